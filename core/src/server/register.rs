//! REGISTER from a softphone whose account names this server (Linphone, Zoiper set up with no
//! proxy): answered 200 so the account shows registered. Nothing is stored and nothing is
//! authenticated: a registration never changes where a call's media goes, and calls are
//! answered from any address the access list allows, registered or not.

use super::request::Request;
use super::transactions::TxnKey;
use super::Cx;
use crate::ascii;

/// The binding time we grant, whatever was asked (RFC 3261 §10.3: the registrar may shorten
/// it; here it may also lengthen a very short one instead of asking again with 423).
const MIN_EXPIRES: u32 = 60;
const MAX_EXPIRES: u32 = 3600;

/// 200 with the request's Contact and the granted `expires` (RFC 3261 §10.3 step 8); a removal
/// (`Expires: 0`) or a query (no Contact) gets a 200 naming no binding.
pub(super) fn on_register(cx: &mut Cx<'_>, req: &Request<'_>, key: TxnKey) {
    let asked = req.expires.unwrap_or(MAX_EXPIRES);
    let granted = if asked == 0 {
        0
    } else {
        asked.clamp(MIN_EXPIRES, MAX_EXPIRES)
    };
    let mut buf = [0; 20];
    let expires = ascii::decimal(granted as u64, &mut buf);
    match req.contact.filter(|_| granted > 0) {
        Some(uri) => {
            let contact = format!("<{uri}>;expires={granted}");
            cx.respond_final(
                req,
                key,
                200,
                &[("Contact", &contact), ("Expires", expires)],
            );
        }
        None => cx.respond_final(req, key, 200, &[("Expires", expires)]),
    }
}
