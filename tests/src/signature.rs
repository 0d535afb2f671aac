//! An independent check of the delivery signature, written from the documented algorithm rather
//! than with `belter_common::signing`, so a bug shared by signer and verifier cannot hide.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Computes `v1=` followed by the lowercase hex HMAC-SHA256 of `body`, keyed with the UTF-8
/// bytes of `secret` (its `whsec_` prefix included).
pub fn expected_signature(secret: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so construction fails only on a broken hmac crate.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC-SHA256 accepts keys of any length");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks whether one of the signatures in `header` is the signature of `body` under `secret`.
/// During a secret rotation the header carries one signature per valid secret, separated by
/// spaces or commas.
pub fn signature_matches(secret: &str, body: &[u8], header: &str) -> bool {
    let expected = expected_signature(secret, body);
    header
        .split([' ', ','])
        .any(|signature| signature.trim() == expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_known_vector() {
        // Computed independently with
        // `printf '%s' 'The quick brown fox jumps over the lazy dog' | openssl dgst -sha256 -hmac key`.
        let signature = expected_signature("key", b"The quick brown fox jumps over the lazy dog");
        assert_eq!(
            signature,
            "v1=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }

    #[test]
    fn signature_rejects_other_secret() {
        let header = expected_signature("whsec_one", b"{}");
        assert!(!signature_matches("whsec_two", b"{}", &header));
    }

    #[test]
    fn signature_accepts_any_listed() {
        let header = format!(
            "{} {}",
            expected_signature("whsec_new", b"{}"),
            expected_signature("whsec_old", b"{}")
        );

        assert!(signature_matches("whsec_new", b"{}", &header));
        assert!(signature_matches("whsec_old", b"{}", &header));
        assert!(!signature_matches("whsec_other", b"{}", &header));
    }

    #[test]
    fn signature_rejects_other_body() {
        let header = expected_signature("whsec_one", b"{}");
        assert!(!signature_matches("whsec_one", b"{ }", &header));
    }
}
