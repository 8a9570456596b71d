//! SDP (RFC 8866) parsing and offer/answer (RFC 3264).
