//! The status page in a real browser: headless Chromium driven over WebDriver opens the page the
//! control listener serves, and the tests read what it shows from the DOM while callers of our
//! own come and go: each call with its codec and whether it plays or is held, music switches (a
//! class, a file) from the call's picker, a preview of a class played in the page, Hang up (the
//! caller gets BYE and the row goes), the list emptying, the banner when the server stops and
//! the reconnection when it is back; and, with a token set, the page asking for it.
//!
//! Both binaries: the page and its API are the shared runtime's, but each binary has its own
//! loop answering the API, and a browser session costs a few seconds.
//!
//! Needs `chromium` and `chromedriver` (Debian `chromium`, `chromium-driver`). Without them the
//! tests say so and pass, except under `CI=true`, where `.ci/run` installs them and their
//! absence is a failure.
//!
//! With `ONHOLD_STATUS_SCREENSHOT=PATH` (relative to the workspace root) the first test also
//! saves a screenshot of the page with calls up to PATH (how docs/status-page.png is made), after
//! letting the chart fill a while.

use std::net::SocketAddr;
use std::time::Duration;

use onhold_tests::caller::{dp750_offer, Caller};
use onhold_tests::http::{get, request};
use onhold_tests::server::config_with_class;
use onhold_tests::webdriver::Browser;
use onhold_tests::{both_runtimes, wav, RtpReceiver, Runtime, Server, ServerOptions, TempDir};
use serde_json::Value;

both_runtimes!(
    the_page_follows_calls_and_hangs_one_up,
    the_page_asks_for_the_token_and_keeps_it_out_of_urls,
);

/// A page wait: long enough for a loaded CI machine, short enough to fail a broken page fast.
const SHOWN: Duration = Duration::from_secs(10);

/// A browser, or `None` (with the reason printed) when this machine has none and is not CI.
/// One that is installed and fails to start fails the test.
fn browser(width: u32, height: u32) -> Option<Browser> {
    match Browser::installed() {
        Ok(_) => Some(Browser::start(width, height)),
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("skipped: {e}");
            None
        }
        Err(e) => panic!("CI=true, and there is no browser: {e}"),
    }
}

/// The rows of the call list as the page shows them.
const ROWS: &str = "return [...document.querySelectorAll('#call-rows tr')].map((r) => ({
    id: r.dataset.call,
    codec: r.querySelector('.col-codec').textContent,
    rtp: r.querySelector('.col-rtp').textContent,
    state: r.querySelector('.col-state').textContent,
    packets: Number(r.querySelector('.col-packets').textContent.replace(/,/g, '')) || 0,
    music: r.querySelector('.col-music select').value,
}));";

fn rows(v: &Value) -> &Vec<Value> {
    v.as_array().expect("an array of rows")
}

/// The row of the call whose RTP goes to `rtp`.
fn row_for(v: &Value, rtp: SocketAddr) -> &Value {
    rows(v)
        .iter()
        .find(|r| r["rtp"].as_str() == Some(&rtp.to_string()))
        .unwrap_or_else(|| panic!("no row for {rtp}: {v}"))
}

/// Nothing the page loaded came from anywhere but `origin`, and nothing in it points elsewhere:
/// it works with the network off.
fn assert_self_contained(b: &Browser, origin: &str) {
    let external = b.eval(
        "const here = location.origin;
         const loaded = performance.getEntriesByType('resource').map((e) => e.name);
         const linked = [...document.querySelectorAll('[src], [href]')]
           .map((e) => e.src || e.href).filter((u) => u && !u.startsWith('blob:'));
         return [...loaded, ...linked].filter((u) => new URL(u, here).origin !== here);",
    );
    assert_eq!(external, serde_json::json!([]), "loaded from elsewhere");
    let origin_now = b.eval("return location.origin;");
    assert_eq!(origin_now, origin);
    let scripts = b.eval("return document.scripts.length;");
    assert_eq!(scripts, 1, "one script, the page's own");
}

fn the_page_follows_calls_and_hangs_one_up(rt: Runtime) {
    let Some(b) = browser(1200, 1000) else {
        return;
    };
    let dir = TempDir::new("page-music");
    let tone = dir.join("sales-jingle.wav");
    wav::write_sine(&tone, 440.0, 12.0);
    let config = config_with_class(&dir, "sales", &tone);
    let mut server = Server::start_with(rt, ServerOptions::default().config(config));
    let c = server.control;

    // The page allows nothing but its own origin (a browser enforces it), and names nothing
    // outside it.
    let page = get(c, "/");
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    let csp = page.header("content-security-policy").expect("a CSP");
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    assert!(!page.body.contains("http://") && !page.body.contains("https://"));
    let post = request(c, "POST", "/", "", b"");
    assert_eq!((post.status, post.header("allow")), (405, Some("GET")));

    let origin = format!("http://{c}");
    b.goto(&format!("{origin}/"));
    let version = b.wait_until(
        "the version",
        SHOWN,
        "return document.getElementById('version').textContent;",
        |v| v.as_str().is_some_and(|s| s.starts_with("0.")),
    );
    assert!(version.as_str().unwrap().contains(rt_name(rt)), "{version}");
    let header = b.eval(
        "return ['health', 'listeners', 'music-summary', 'limits', 'calls-active']
           .map((id) => document.getElementById(id).textContent);",
    );
    assert_eq!(header[0], "ok", "{header}");
    assert_eq!(header[1], format!("udp {}", server.sip), "{header}");
    assert!(
        header[2]
            .as_str()
            .unwrap()
            .starts_with("2 classes, 2 tracks"),
        "{header}"
    );
    assert!(
        header[3].as_str().unwrap().contains("max_calls 1000"),
        "{header}"
    );
    assert_self_contained(&b, &origin);
    let empty = b.eval(
        "return [document.querySelectorAll('#call-rows tr').length,
                 document.getElementById('no-calls').hidden];",
    );
    assert_eq!(empty, serde_json::json!([0, false]), "no calls yet");

    // Three calls: PCMU and PCMA playing, and G.722 that the caller holds (inactive).
    let (rx_u, rx_a, rx_g) = (
        RtpReceiver::bind(),
        RtpReceiver::bind(),
        RtpReceiver::bind(),
    );
    let pcmu = Caller::call(server.sip, rx_u.addr());
    let pcma = Caller::invite(
        server.sip,
        &dp750_offer(rx_a.addr(), "RTP/AVP", "8 101", 20, "sendrecv"),
    );
    assert_eq!(pcma.status(), 200, "{}", pcma.answer);
    let g722 = Caller::invite(
        server.sip,
        &dp750_offer(rx_g.addr(), "RTP/AVP", "9 101", 20, "inactive"),
    );
    assert_eq!(g722.status(), 200, "{}", g722.answer);
    let shown = b.wait_until("three answered calls", SHOWN, ROWS, |v| {
        rows(v).len() == 3 && rows(v).iter().all(|r| r["state"] != "answering")
    });
    assert_eq!(row_for(&shown, rx_u.addr())["codec"], "PCMU", "{shown}");
    assert_eq!(row_for(&shown, rx_a.addr())["codec"], "PCMA", "{shown}");
    assert_eq!(row_for(&shown, rx_g.addr())["codec"], "G722", "{shown}");
    assert_eq!(row_for(&shown, rx_u.addr())["state"], "playing");
    assert_eq!(row_for(&shown, rx_a.addr())["state"], "playing");
    assert_eq!(row_for(&shown, rx_g.addr())["state"], "held");
    assert_eq!(row_for(&shown, rx_u.addr())["music"], "default");
    let ids: Vec<String> = rows(&shown)
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    let api = get(c, "/api/calls").json();
    let mut api_ids: Vec<String> = api["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    api_ids.sort();
    let mut page_ids = ids.clone();
    page_ids.sort();
    assert_eq!(page_ids, api_ids, "the page lists the server's calls");
    assert!(b.eval("return document.getElementById('no-calls').hidden;") == true);
    // Packet counts come in with the slow refresh (none for the held call).
    b.wait_until("packet counts", SHOWN, ROWS, |v| {
        rows(v)
            .iter()
            .filter(|r| r["state"] == "playing")
            .all(|r| r["packets"].as_u64() > Some(0))
    });

    // Switch the PCMU call to the sales class from its picker: the server plays it.
    let id_u = row_for(&shown, rx_u.addr())["id"]
        .as_str()
        .unwrap()
        .to_string();
    b.click(&format!("tr[data-call='{id_u}'] select"));
    b.click(&format!(
        "tr[data-call='{id_u}'] select option[value='sales']"
    ));
    let switched = onhold_tests::wait_for(SHOWN, || {
        let one = get(c, &format!("/api/calls/{id_u}")).json();
        (one["class"] == "sales").then_some(one)
    });
    assert!(switched.is_some(), "the picker did not switch the music");
    // And the PCMA call to a file on the server, named in the picker's prompt.
    let id_a = row_for(&shown, rx_a.addr())["id"]
        .as_str()
        .unwrap()
        .to_string();
    let file = tone.display().to_string();
    b.click(&format!("tr[data-call='{id_a}'] select"));
    b.click(&format!(
        "tr[data-call='{id_a}'] select option[value='<file>']"
    ));
    b.answer_prompt(&file);
    let switched = onhold_tests::wait_for(SHOWN, || {
        let one = get(c, &format!("/api/calls/{id_a}")).json();
        (one["class"] == file.as_str()).then_some(one)
    });
    assert!(switched.is_some(), "the picker did not play the file");
    b.wait_until("the file in the picker", SHOWN, ROWS, |v| {
        row_for(v, rx_a.addr())["music"] == file.as_str()
    });

    // A preview of the sales class, played in the page: 15 s of WAV.
    b.click("button[data-class='sales']");
    let audio = b.wait_until(
        "the preview loaded",
        SHOWN,
        "const a = document.getElementById('preview');
         return [a.src.slice(0, 5), a.dataset.class || '', a.readyState, a.duration || 0];",
        |v| v[2].as_u64() >= Some(1),
    );
    assert_eq!(audio[0], "blob:", "{audio}");
    assert_eq!(audio[1], "sales", "{audio}");
    let seconds = audio[3].as_f64().unwrap();
    assert!((seconds - 15.0).abs() < 0.1, "{seconds} s of preview");

    if rt == Runtime::Smol {
        if let Ok(path) = std::env::var("ONHOLD_STATUS_SCREENSHOT") {
            // Let the chart gather a minute of samples first; the window tall enough for all.
            std::thread::sleep(Duration::from_secs(60));
            b.resize(1200, 1560);
            b.eval("window.scrollTo(0, 0); return null;");
            let path = onhold_tests::workspace_root().join(path);
            std::fs::write(&path, b.screenshot()).expect("write the screenshot");
            eprintln!("wrote {}", path.display());
        }
    }
    let png = b.screenshot();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "the screenshot is a PNG");

    // Hang up the PCMA call from its button: the caller gets the operator's BYE and the row goes.
    b.click(&format!("tr[data-call='{id_a}'] button.hangup"));
    let bye = pcma
        .recv_request(SHOWN)
        .expect("the caller gets BYE after Hang up");
    assert!(bye.starts_with("BYE "), "{bye}");
    assert!(bye.contains("text=\"hung up by operator\""), "{bye}");
    let left = b.wait_until("two calls left", SHOWN, ROWS, |v| rows(v).len() == 2);
    assert!(
        rows(&left).iter().all(|r| r["id"] != id_a.as_str()),
        "{left}"
    );
    let news = b.eval("return document.getElementById('call-news').textContent;");
    assert_eq!(
        news,
        "Call from Reception (201) ended: hung up by operator."
    );

    // The other callers hang up: the list empties.
    assert_eq!(pcmu.bye(), 200);
    assert_eq!(g722.bye(), 200);
    b.wait_until("no calls", SHOWN, ROWS, |v| rows(v).is_empty());
    assert!(b.eval("return document.getElementById('no-calls').hidden;") == false);

    // Nothing the page did was refused by its policy or failed in its script.
    let errors: Vec<Value> = b
        .console()
        .into_iter()
        .filter(|m| {
            m["level"] == "SEVERE" && !m["message"].as_str().unwrap_or("").contains("favicon")
        })
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");

    // The server stops: the page says its live updates are lost.
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit(SHOWN).is_some(), "the server did not exit");
    let banner = b.wait_until(
        "the banner",
        SHOWN,
        "const b = document.getElementById('banner'); return [b.hidden, b.textContent];",
        |v| v[0] == false,
    );
    assert!(
        banner[1].as_str().unwrap().starts_with("Live updates lost"),
        "{banner}"
    );

    // It comes back where the page knows it: the page reconnects by itself, the banner goes,
    // and the new server's call is listed.
    drop(server);
    let again = Server::start_with(rt, ServerOptions::default().control(c));
    let rx = RtpReceiver::bind();
    let caller = Caller::call(again.sip, rx.addr());
    // The page retries after 1, 2, 4 … s (at most 10): a bound past two retries.
    let back = b.wait_until(
        "the reconnection",
        Duration::from_secs(25),
        &format!(
            "const b = document.getElementById('banner');
             return [b.hidden, {}];",
            ROWS.trim_start_matches("return ").trim_end_matches(';')
        ),
        |v| v[0] == true && rows(&v[1]).len() == 1 && rows(&v[1])[0]["state"] == "playing",
    );
    assert_eq!(rows(&back[1])[0]["rtp"], rx.addr().to_string());
    assert_eq!(caller.bye(), 200);
}

fn rt_name(rt: Runtime) -> &'static str {
    match rt {
        Runtime::Smol => "smol",
        Runtime::Mio => "mio",
    }
}

fn the_page_asks_for_the_token_and_keeps_it_out_of_urls(rt: Runtime) {
    let Some(b) = browser(800, 900) else {
        return;
    };
    let token = "page-token-0123456789abcdef";
    let server = Server::start_with(
        rt,
        ServerOptions::default().arg("--control-token").arg(token),
    );
    let c = server.control;
    // The page is served without the token (it holds no data); the API is not.
    assert_eq!(get(c, "/").status, 200);
    assert_eq!(get(c, "/status.js").status, 200);
    assert_eq!(get(c, "/api/status").status, 401);
    assert_eq!(get(c, "/api/music/default/preview.wav").status, 401);

    b.goto(&format!("http://{c}/"));
    b.wait_until(
        "the token form",
        SHOWN,
        "return document.getElementById('token-box').hidden;",
        |v| *v == false,
    );
    // Whether the token form is up, what it says, and the health line, after sending `token`.
    let submit = |token: &str, what: &str, done: &dyn Fn(&Value) -> bool| {
        b.type_into("#token-input", token);
        b.click("#token-form button");
        b.wait_until(
            what,
            SHOWN,
            "return [document.getElementById('token-box').hidden,
                     document.getElementById('token-error').textContent,
                     document.getElementById('health').textContent];",
            done,
        );
    };
    submit("wrong-token", "the refusal", &|v| {
        v[0] == false && v[1].as_str().is_some_and(|s| s.contains("refused"))
    });
    submit(token, "the status with the token", &|v| {
        v[0] == true && v[2] == "ok"
    });
    // A call shows up through the event stream read with the token.
    let rx = RtpReceiver::bind();
    let caller = Caller::call(server.sip, rx.addr());
    let shown = b.wait_until("the call playing", SHOWN, ROWS, |v| {
        rows(v).len() == 1 && rows(v)[0]["state"] == "playing"
    });
    assert_eq!(rows(&shown)[0]["codec"], "PCMU");
    assert_eq!(caller.bye(), 200);
    b.wait_until("no calls", SHOWN, ROWS, |v| rows(v).is_empty());
    // Kept for this tab only, and never put into a URL.
    let kept = b.eval("return sessionStorage.getItem('onhold-control-token');");
    assert_eq!(kept, token);
    let urls = b.eval(
        "return performance.getEntriesByType('resource').map((e) => e.name).concat([location.href]);",
    );
    assert!(!urls.to_string().contains(token), "{urls}");
    assert!(
        !server.stderr().contains(token),
        "the token is never logged"
    );
}
