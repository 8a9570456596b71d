//! Music: decoding from bytes, resampling, G.711/G.722 encoding, libraries and classes.
