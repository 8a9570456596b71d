//! Test-only strategies shared by the proptests that compare a fast path with its reference.

use proptest::prelude::*;

/// `good` inputs with up to `max_edits` bytes from `bytes` inserted, removed or replaced: near
/// misses of the usual shape, which is where a fast path and its reference can part ways.
pub(crate) fn byte_edits(
    good: impl Strategy<Value = Vec<u8>>,
    bytes: &'static [u8],
    max_edits: usize,
) -> impl Strategy<Value = Vec<u8>> {
    let edit = (
        any::<prop::sample::Index>(),
        0..3u8,
        prop::sample::select(bytes),
    );
    (good, prop::collection::vec(edit, 0..max_edits + 1)).prop_map(|(mut b, edits)| {
        for (at, op, c) in edits {
            let i = at.index(b.len() + 1);
            match op {
                0 => b.insert(i, c),
                1 if i < b.len() => _ = b.remove(i),
                _ if i < b.len() => b[i] = c,
                _ => b.push(c),
            }
        }
        b
    })
}

/// `;name` or `;name=value`, the name and value drawn from the two regexes.
pub(crate) fn param(name: &'static str, value: &'static str) -> impl Strategy<Value = String> {
    (name, prop::option::of(value)).prop_map(|(n, v)| match v {
        Some(v) => format!(";{n}={v}"),
        None => format!(";{n}"),
    })
}

/// `good` values with zero to two bytes from `bytes` inserted, removed or replaced.
pub(crate) fn mutated(
    good: impl Strategy<Value = String>,
    bytes: &'static [u8],
) -> impl Strategy<Value = String> {
    byte_edits(good.prop_map(String::into_bytes), bytes, 2)
        .prop_map(|b| String::from_utf8(b).expect("ASCII edits of ASCII"))
}
