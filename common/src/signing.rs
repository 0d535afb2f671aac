//! The delivery signature: `v1=` followed by the lowercase hex HMAC-SHA256 of the raw body, keyed
//! with the UTF-8 bytes of the endpoint secret, `whsec_` prefix included.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Version tag in front of every signature.
pub const SIGNATURE_VERSION: &str = "v1=";

/// Prefix of every endpoint secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// Computes the signature header value for `body` under `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    signature_of(new_mac(secret), body)
}

/// An endpoint secret's HMAC state with the key already hashed, so that each signature hashes
/// only the body and not the two key blocks as well.
#[derive(Clone)]
pub struct SigningKey {
    secret: String,
    mac: HmacSha256,
}

impl SigningKey {
    /// Prepares the key of `secret`.
    pub fn new(secret: &str) -> Self {
        Self {
            secret: secret.to_owned(),
            mac: new_mac(secret),
        }
    }

    /// Checks whether this key was prepared from `secret`.
    pub fn is_for(&self, secret: &str) -> bool {
        self.secret == secret
    }

    /// Computes the signature header value for `body`, the same as [`sign`] with this secret.
    pub fn sign(&self, body: &[u8]) -> String {
        signature_of(self.mac.clone(), body)
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret stays out of logs and debug output.
        formatter.write_str("SigningKey(..)")
    }
}

fn signature_of(mut mac: HmacSha256, body: &[u8]) -> String {
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut text = [0; 64];
    // `encode_to_slice` fails only for a buffer that is not twice the input, and this one is
    // twice the digest's 32 bytes.
    let _ = hex::encode_to_slice(digest, &mut text);
    let mut signature = String::with_capacity(SIGNATURE_VERSION.len() + text.len());
    signature.push_str(SIGNATURE_VERSION);
    signature.extend(text.iter().map(|&digit| char::from(digit)));
    signature
}

/// Checks a signature header value against `body` in constant time. The header may carry several
/// space- or comma-separated signatures, as during a secret rotation, and one match is enough.
pub fn verify(secret: &str, body: &[u8], header: &str) -> bool {
    header
        .split([' ', ','])
        .filter_map(|part| part.trim().strip_prefix(SIGNATURE_VERSION))
        .filter_map(|hex_digest| hex::decode(hex_digest).ok())
        .any(|expected| {
            let mut mac = new_mac(secret);
            mac.update(body);
            mac.verify_slice(&expected).is_ok()
        })
}

/// Computes a Standard Webhooks signature, `v1,<base64 HMAC-SHA256>` over `id.timestamp.body`,
/// keyed with the base64-decoded part of a `whsec_` secret. Returns `None` when the secret's
/// part after the prefix is not standard base64.
pub fn standard_signature(
    secret: &str,
    message_id: &str,
    timestamp_secs: u64,
    body: &[u8],
) -> Option<String> {
    use base64::Engine;
    let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    let key = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let mut mac = <HmacSha256 as Mac>::new_from_slice(&key).ok()?;
    mac.update(message_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp_secs.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    Some(format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    ))
}

fn new_mac(secret: &str) -> HmacSha256 {
    // HMAC takes keys of any length, so this constructor cannot fail.
    <HmacSha256 as Mac>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const BODY: &[u8] = br#"{"id":"evt_1","event":"csat.received","data":{"rating":4}}"#;

    #[test]
    fn sign_matches_fixed_vector() {
        // Computed independently with: printf '%s' "$BODY" | openssl dgst -sha256 -hmac "$SECRET"
        assert_eq!(
            sign(SECRET, BODY),
            "v1=f8e29dc3cdeec5f26e3a348e66df726374ba955da8f5a43eeecb53642141862b"
        );
        assert_eq!(
            sign("key", b"The quick brown fox jumps over the lazy dog"),
            "v1=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }

    #[test]
    fn standard_signature_matches_spec_vector() {
        // The example of the Standard Webhooks specification, also what the reference Python
        // package `standardwebhooks` 1.3.0 computes for it.
        let signature = standard_signature(
            SECRET,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(
            signature.as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
        assert_eq!(standard_signature("whsec_not base64!", "m", 1, b""), None);
    }

    #[test]
    fn prepared_key_matches_sign() {
        let key = SigningKey::new(SECRET);
        assert_eq!(
            key.sign(BODY),
            "v1=f8e29dc3cdeec5f26e3a348e66df726374ba955da8f5a43eeecb53642141862b"
        );
        // The key's state is copied for each signature, so signing twice gives the same value.
        assert_eq!(key.sign(BODY), sign(SECRET, BODY));
        assert_eq!(key.sign(b""), sign(SECRET, b""));
        let long_body = vec![b'x'; 10_000];
        assert_eq!(key.sign(&long_body), sign(SECRET, &long_body));
        // A secret longer than a SHA-256 block is hashed into the key first.
        let long_secret = "whsec_".repeat(20);
        let long_key = SigningKey::new(&long_secret);
        assert_eq!(long_key.sign(BODY), sign(&long_secret, BODY));
    }

    #[test]
    fn key_is_for_its_secret_only() {
        let key = SigningKey::new(SECRET);
        assert!(key.is_for(SECRET));
        assert!(!key.is_for("whsec_other"));
        assert!(!format!("{key:?}").contains(SECRET));
    }

    #[test]
    fn verify_accepts_own_signature() {
        let header = sign(SECRET, BODY);
        assert!(verify(SECRET, BODY, &header));
    }

    #[test]
    fn verify_rejects_other_body_or_secret() {
        let header = sign(SECRET, BODY);
        assert!(!verify(SECRET, b"{}", &header));
        assert!(!verify("whsec_other", BODY, &header));
        assert!(!verify(SECRET, BODY, "v1=zz"));
        assert!(!verify(SECRET, BODY, ""));
    }

    #[test]
    fn verify_accepts_any_listed_signature() {
        let header = format!("{} {}", sign("whsec_old", BODY), sign(SECRET, BODY));
        assert!(verify(SECRET, BODY, &header));
        assert!(verify("whsec_old", BODY, &header));
    }
}
