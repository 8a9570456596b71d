//! Headless Chromium driven over WebDriver: `chromedriver` on a loopback port, spoken to with a
//! few JSON requests over the tests' own HTTP client (a WebDriver crate would bring an async
//! runtime and a large dependency tree for the dozen commands the status page test uses).
//!
//! Needs Debian's `chromium` and `chromium-driver`: [`Browser::installed`] says which is missing,
//! and the caller decides whether that skips or fails.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::http::request_within;
use crate::{ports, TempDir};

/// How long chromedriver may take to answer a command (starting Chromium is the slowest).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long chromedriver may take to start listening.
const DRIVER_READY: Duration = Duration::from_secs(20);
/// The key WebDriver names an element reference with.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The first of `names` that is an executable file in `PATH` or `/usr/bin`.
fn find(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain([PathBuf::from("/usr/bin")]);
    let dirs: Vec<PathBuf> = dirs.collect();
    names
        .iter()
        .flat_map(|n| dirs.iter().map(move |d| d.join(n)))
        .find(|p| p.is_file())
}

/// One browser session, ended (and its driver killed) when dropped.
pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    _profile: TempDir,
}

impl Browser {
    /// Where Chromium and chromedriver are; `Err` says which is not installed.
    pub fn installed() -> Result<(PathBuf, PathBuf), String> {
        let chromium = find(&["chromium", "chromium-browser"])
            .ok_or("chromium is not installed (Debian package chromium)")?;
        let chromedriver = find(&["chromedriver"])
            .ok_or("chromedriver is not installed (Debian package chromium-driver)")?;
        Ok((chromium, chromedriver))
    }

    /// Start chromedriver and a headless Chromium of `width`×`height` CSS pixels. Panics when
    /// they are not installed ([`Browser::installed`] tells first) or do not start.
    pub fn start(width: u32, height: u32) -> Browser {
        let (chromium, chromedriver) = Browser::installed().unwrap_or_else(|e| panic!("{e}"));
        let port = ports::free_tcp_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", chromedriver.display()));
        let profile = TempDir::new("chromium");
        let mut b = Browser {
            driver,
            addr,
            session: String::new(),
            _profile: profile,
        };
        let ready = crate::wait_for(DRIVER_READY, || {
            std::net::TcpStream::connect(addr).ok()?;
            let s = b.send("GET", "/status", None).ok()?;
            s["ready"].as_bool().filter(|r| *r)
        });
        assert!(
            ready.is_some(),
            "chromedriver did not get ready in {DRIVER_READY:?}"
        );
        let caps = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:loggingPrefs": { "browser": "ALL" },
                "goog:chromeOptions": {
                    "binary": chromium.display().to_string(),
                    "args": [
                        "--headless=new",
                        // The tests run as root in CI, where Chromium's sandbox refuses to start.
                        "--no-sandbox",
                        "--disable-gpu",
                        "--disable-dev-shm-usage",
                        "--no-first-run",
                        "--mute-audio",
                        "--autoplay-policy=no-user-gesture-required",
                        format!("--user-data-dir={}", b._profile.path().display()),
                        format!("--window-size={width},{height}"),
                        "--force-device-scale-factor=1",
                        "--lang=en-US",
                    ],
                },
            }},
        });
        let v = b
            .send("POST", "/session", Some(caps))
            .unwrap_or_else(|e| panic!("no browser session: {e}"));
        b.session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {v}"))
            .to_string();
        b
    }

    /// One WebDriver command; `Ok` is the answer's `value`, `Err` the driver's error.
    fn send(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let r = request_within(
            self.addr,
            method,
            path,
            "Content-Type: application/json; charset=utf-8\r\n",
            body.as_bytes(),
            COMMAND_TIMEOUT,
        );
        let v: Value = serde_json::from_str(&r.body)
            .map_err(|e| format!("{method} {path}: not JSON ({e}): {}", r.body))?;
        if r.status == 200 {
            Ok(v["value"].clone())
        } else {
            Err(format!("{method} {path}: {} {}", r.status, v["value"]))
        }
    }

    /// A command in this session; panics with the driver's error.
    fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        self.send(method, &path, body)
            .unwrap_or_else(|e| panic!("webdriver: {e}"))
    }

    pub fn goto(&self, url: &str) {
        self.command("POST", "/url", Some(json!({ "url": url })));
    }

    /// Make the window `width`×`height`.
    pub fn resize(&self, width: u32, height: u32) {
        self.command(
            "POST",
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        );
    }

    /// Run `script` (a function body: `return …;`) in the page and return what it returns.
    pub fn eval(&self, script: &str) -> Value {
        self.command(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
    }

    /// Evaluate `script` every 100 ms until `done` accepts its value, for at most `timeout`;
    /// panics with the last value and `what` when it never does.
    pub fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        script: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.eval(script);
            if done(&v) {
                return v;
            }
            if Instant::now() >= deadline {
                panic!("the page did not show {what} within {timeout:?}; last: {v}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The element `css` selects (panics if none does).
    pub fn find(&self, css: &str) -> String {
        let v = self.command(
            "POST",
            "/element",
            Some(json!({ "using": "css selector", "value": css })),
        );
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_string()
    }

    /// Click the element `css` selects, as a user would (scrolled into view, at its centre).
    pub fn click(&self, css: &str) {
        let id = self.find(css);
        self.command("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    /// Type `text` into the element `css` selects.
    pub fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.command(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        );
    }

    /// Answer the open `prompt()` with `text`.
    pub fn answer_prompt(&self, text: &str) {
        self.command("POST", "/alert/text", Some(json!({ "text": text })));
        self.command("POST", "/alert/accept", Some(json!({})));
    }

    /// The browser's console messages since the last call (`level`, `message`).
    pub fn console(&self) -> Vec<Value> {
        let v = self.command("POST", "/se/log", Some(json!({ "type": "browser" })));
        v.as_array().cloned().unwrap_or_default()
    }

    /// A PNG of the window.
    pub fn screenshot(&self) -> Vec<u8> {
        let v = self.command("GET", "/screenshot", None);
        let b64 = v.as_str().expect("the screenshot is a base64 string");
        base64_decode(b64).expect("the screenshot is valid base64")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.send("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Standard base64 (with padding) to bytes.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    if bytes.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for quad in bytes.chunks(4) {
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        let mut n = 0u32;
        for &c in &quad[..4 - pad] {
            n = n << 6 | value(c)?;
        }
        n <<= 6 * pad as u32;
        let three = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&three[..3 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::base64_decode;

    #[test]
    fn base64_decodes_with_and_without_padding() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGk=").unwrap(), b"hi");
        assert_eq!(base64_decode("aGV5").unwrap(), b"hey");
        assert_eq!(base64_decode("iVBORw0KGgo=").unwrap(), b"\x89PNG\r\n\x1a\n");
        assert!(base64_decode("a$==").is_none());
    }
}
