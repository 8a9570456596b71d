//! SIP messages (RFC 3261 §7, §20, §25): borrowed zero-copy parser, URIs, one serializer.
