//! Minimising a failure's inputs: replays on fresh servers, removing whole conversations,
//! then single steps, while the failure persists.

use std::collections::BTreeSet;

use super::msg;
use super::rig::{Rig, Step};
use super::SERVER_SEED;

/// Does this input alone violate an invariant of the same kind on a fresh server? Other
/// violations on the way are passed over (not a panic: the server is suspect after one).
pub fn reproduces(steps: &[Step], kind: &str) -> bool {
    let mut rig = Rig::replaying(SERVER_SEED);
    for s in steps {
        match rig.step(s) {
            Err(v) if v.kind == kind => return true,
            Err(v) if v.kind == "panic" => return false,
            _ => {}
        }
    }
    rig.check_batch().is_err_and(|v| v.kind == kind)
}

/// Cut the steps down while the failure persists, within a bounded number of replays: first
/// whole conversations (every datagram of a Call-ID at once), then single steps.
pub fn minimise(steps: Vec<Step>, kind: &str) -> Vec<Step> {
    let mut budget = 400u32;
    // The shortest tail that still fails, found by bisection (most of a window is history).
    let (mut lo, mut hi) = (0, steps.len());
    while hi - lo > 1 {
        budget -= 1;
        let mid = (lo + hi) / 2;
        if reproduces(&steps[mid..], kind) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let steps = steps[lo..].to_vec();
    let mut steps = reduce(steps, |_, s| call_id(s), kind, &mut budget);
    // Then single steps, until a round removes nothing: each round starts tidy, and a removed
    // datagram lets the pauses around it merge.
    for _ in 0..4 {
        let tidy = tidy(&steps);
        if tidy.len() < steps.len() && reproduces(&tidy, kind) {
            steps = tidy;
        }
        let before = steps.len();
        let mut budget = 800u32;
        steps = reduce(
            steps,
            |i, _| Some(i.to_le_bytes().to_vec()),
            kind,
            &mut budget,
        );
        if steps.len() == before {
            break;
        }
    }
    steps
}

/// The same inputs in fewer steps: consecutive pauses as one, and no note of tokens that no
/// later step uses.
fn tidy(steps: &[Step]) -> Vec<Step> {
    let used = |token: &str, later: &[Step]| {
        later.iter().any(|s| match s {
            Step::Datagram { bytes, .. } => msg::find(bytes, token.as_bytes()).is_some(),
            Step::Hangup(h) => token == format!("#{}", h.0),
            _ => false,
        })
    };
    let mut out: Vec<Step> = Vec::with_capacity(steps.len());
    for (i, s) in steps.iter().enumerate() {
        match (s, out.last_mut()) {
            (
                Step::Advance { by, late: false },
                Some(Step::Advance {
                    by: before,
                    late: false,
                }),
            ) => *before += *by,
            (Step::Issued(tokens), _) => {
                if tokens.iter().any(|t| used(t, &steps[i + 1..])) {
                    out.push(s.clone());
                }
            }
            _ => out.push(s.clone()),
        }
    }
    out
}

/// Delta debugging over the units `key` puts steps in (steps without a key stay): remove half
/// the units at a time, then quarters, … down to one, keeping every removal after which the
/// failure persists.
fn reduce(
    steps: Vec<Step>,
    key: impl Fn(usize, &Step) -> Option<Vec<u8>>,
    kind: &str,
    budget: &mut u32,
) -> Vec<Step> {
    let keys: Vec<Option<Vec<u8>>> = steps.iter().enumerate().map(|(i, s)| key(i, s)).collect();
    let mut units: Vec<&Vec<u8>> = Vec::new();
    let mut seen = BTreeSet::new();
    for k in keys.iter().flatten() {
        if seen.insert(k) {
            units.push(k);
        }
    }
    let mut removed: BTreeSet<&Vec<u8>> = BTreeSet::new();
    let keep = |removed: &BTreeSet<&Vec<u8>>| -> Vec<Step> {
        steps
            .iter()
            .zip(&keys)
            .filter(|(_, k)| k.as_ref().is_none_or(|k| !removed.contains(k)))
            .map(|(s, _)| s.clone())
            .collect()
    };
    let mut chunk = units.len().div_ceil(2);
    while chunk >= 1 && *budget > 0 {
        let mut i = 0;
        while i < units.len() && *budget > 0 {
            *budget -= 1;
            let end = (i + chunk).min(units.len());
            let mut trial = removed.clone();
            trial.extend(&units[i..end]);
            let candidate = keep(&trial);
            if !candidate.is_empty() && reproduces(&candidate, kind) {
                removed = trial;
                units.drain(i..end);
            } else {
                i += chunk;
            }
        }
        if chunk == 1 {
            break;
        }
        chunk = chunk.div_ceil(2);
    }
    keep(&removed)
}

/// The Call-ID of a datagram step, as written.
fn call_id(step: &Step) -> Option<Vec<u8>> {
    let Step::Datagram { bytes, .. } = step else {
        return None;
    };
    let head = &bytes[..msg::find(bytes, b"\r\n\r\n").unwrap_or(bytes.len())];
    head.split(|&b| b == b'\n')
        .find(|l| msg::line_is(l, "call-id"))
        .map(|l| {
            let v = &l[l.iter().position(|&b| b == b':').map_or(0, |c| c + 1)..];
            v.trim_ascii().to_vec()
        })
}
