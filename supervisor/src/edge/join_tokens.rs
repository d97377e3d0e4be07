//! Signed join tokens (JWT): who may join which room, under what name, and whether they may
//! publish and subscribe. A deployment's own backend signs them with `JOIN_SECRET` (HS256), or
//! with a private key whose public half is `JOIN_PUBLIC_KEY` (EdDSA or RS256);
//! `supervisor token` signs one with the secret. Verification is pure: the caller gives the
//! time, so tests need no clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{decode, decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header};
use serde::{Deserialize, Serialize};

/// Clock difference tolerated between the token's signer and this server (the room core
/// holds a resumed session to the same).
pub const CLOCK_SKEW: Duration = room_core::TOKEN_CLOCK_SKEW;

/// A secret shorter than this is refused: HS256 is only as strong as its key.
pub const MIN_SECRET_LEN: usize = 32;

/// The `room` claim that admits to any room.
pub const ANY_ROOM: &str = "*";

/// A join token's claims.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Claims {
    /// The one room it admits to, or `*` for any.
    pub room: String,
    /// Identity of the holder (logged, shown to the monitor).
    pub sub: String,
    /// Display name; overrides the one the client asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// May publish (produce); true when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_publish: Option<bool>,
    /// May subscribe (consume); true when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_subscribe: Option<bool>,
    /// May start and stop the room's recording; false when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_record: Option<bool>,
    /// Expiry, seconds since the Unix epoch (required).
    pub exp: u64,
    /// Not valid before, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
}

/// What a valid token grants its holder in the room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// `sub`.
    pub identity: String,
    /// `name`, if the token fixes it.
    pub name: Option<String>,
    /// `canPublish`.
    pub can_publish: bool,
    /// `canSubscribe`.
    pub can_subscribe: bool,
    /// `canRecord`.
    pub can_record: bool,
    /// `exp`: a session admitted with it is not resumed after this (Unix seconds).
    pub expires_at: u64,
}

/// Why a token is refused (said to the client as the reason of `unauthorized`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// No `token` in the join.
    #[error("this SFU needs a join token (`token`)")]
    Missing,
    /// Not a JWT, or claims missing or of the wrong type.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// Signed with another key or algorithm.
    #[error("bad token signature")]
    BadSignature,
    /// Past `exp`.
    #[error("token expired")]
    Expired,
    /// Before `nbf`.
    #[error("token not yet valid")]
    NotYetValid,
    /// For another room.
    #[error("token is for room {0:?}")]
    OtherRoom(String),
}

/// A key that cannot verify (or sign) tokens.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// HS256 secret too short.
    #[error("JOIN_SECRET must be at least {MIN_SECRET_LEN} bytes (e.g. `openssl rand -hex 32`)")]
    ShortSecret,
    /// Neither an Ed25519 nor an RSA public key in PEM.
    #[error("JOIN_PUBLIC_KEY is not an Ed25519 or RSA public key in PEM: {0}")]
    PublicKey(String),
    /// Signing failed.
    #[error("cannot sign the token: {0}")]
    Sign(String),
    /// `supervisor token` without the secret.
    #[error("`supervisor token` signs with JOIN_SECRET (or --join-secret), which is not set; with JOIN_PUBLIC_KEY your backend signs tokens with the private key")]
    NoSecret,
}

/// Verifies join tokens with one key.
#[derive(Clone)]
pub struct JoinVerifier {
    key: DecodingKey,
    algorithm: Algorithm,
}

impl std::fmt::Debug for JoinVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        write!(f, "JoinVerifier({:?})", self.algorithm)
    }
}

impl JoinVerifier {
    /// Tokens signed with `secret` (HS256).
    pub fn from_secret(secret: &[u8]) -> Result<Self, KeyError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(KeyError::ShortSecret);
        }
        Ok(Self {
            key: DecodingKey::from_secret(secret),
            algorithm: Algorithm::HS256,
        })
    }

    /// Tokens signed with the private half of `pem`: an Ed25519 key (EdDSA) or an RSA key
    /// (RS256).
    pub fn from_public_key_pem(pem: &[u8]) -> Result<Self, KeyError> {
        match DecodingKey::from_ed_pem(pem) {
            Ok(key) => Ok(Self {
                key,
                algorithm: Algorithm::EdDSA,
            }),
            Err(ed) => match DecodingKey::from_rsa_pem(pem) {
                Ok(key) => Ok(Self {
                    key,
                    algorithm: Algorithm::RS256,
                }),
                Err(rsa) => Err(KeyError::PublicKey(format!(
                    "as Ed25519: {ed}; as RSA: {rsa}"
                ))),
            },
        }
    }

    /// The algorithm tokens must be signed with.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Checks `token` for a join to `room` at `now` (seconds since the Unix epoch).
    pub fn verify(&self, token: Option<&str>, room: &str, now: u64) -> Result<Grant, TokenError> {
        let token = token.filter(|t| !t.is_empty()).ok_or(TokenError::Missing)?;
        let header = decode_header(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
        // Only the configured algorithm: no `none`, no HS256 signed with a public key.
        if header.alg != self.algorithm {
            return Err(TokenError::BadSignature);
        }
        let mut validation = jsonwebtoken::Validation::new(self.algorithm);
        // Times are checked below against the caller's clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let claims = decode::<Claims>(token, &self.key, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature
                | jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => TokenError::BadSignature,
                _ => TokenError::Malformed(e.to_string()),
            })?
            .claims;
        let skew = CLOCK_SKEW.as_secs();
        if now > claims.exp.saturating_add(skew) {
            return Err(TokenError::Expired);
        }
        if claims.nbf.is_some_and(|nbf| now.saturating_add(skew) < nbf) {
            return Err(TokenError::NotYetValid);
        }
        if claims.room != ANY_ROOM && claims.room != room {
            return Err(TokenError::OtherRoom(claims.room));
        }
        Ok(Grant {
            identity: claims.sub,
            name: claims.name,
            can_publish: claims.can_publish.unwrap_or(true),
            can_subscribe: claims.can_subscribe.unwrap_or(true),
            can_record: claims.can_record.unwrap_or(false),
            expires_at: claims.exp,
        })
    }
}

/// Signs `claims` with `secret` (HS256): what `supervisor token` prints.
pub fn sign_with_secret(secret: &[u8], claims: &Claims) -> Result<String, KeyError> {
    if secret.len() < MIN_SECRET_LEN {
        return Err(KeyError::ShortSecret);
    }
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .map_err(|e| KeyError::Sign(e.to_string()))
}

/// What `supervisor token` prints for `args`, signed with `secret`, issued at `now`.
pub fn token_command(
    secret: Option<&str>,
    args: &crate::config::TokenArgs,
    now: u64,
) -> Result<String, KeyError> {
    let secret = secret.ok_or(KeyError::NoSecret)?;
    let claims = Claims {
        room: args.room.clone(),
        sub: args.identity.clone(),
        name: args.name.clone(),
        can_publish: args.no_publish.then_some(false),
        can_subscribe: args.no_subscribe.then_some(false),
        can_record: args.can_record.then_some(true),
        exp: now.saturating_add(args.ttl.as_secs()),
        nbf: None,
    };
    sign_with_secret(secret.as_bytes(), &claims)
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: u64 = 1_800_000_000;

    fn claims(room: &str) -> Claims {
        Claims {
            room: room.into(),
            sub: "alice".into(),
            name: Some("Alice".into()),
            can_publish: None,
            can_subscribe: Some(false),
            can_record: None,
            exp: NOW + 3600,
            nbf: None,
        }
    }

    fn verify(token: &str, room: &str, now: u64) -> Result<Grant, TokenError> {
        JoinVerifier::from_secret(SECRET)
            .expect("key")
            .verify(Some(token), room, now)
    }

    #[test]
    fn a_valid_token_grants_its_claims_with_rights_defaulting_to_true() {
        let token = sign_with_secret(SECRET, &claims("standup")).expect("sign");
        assert_eq!(
            verify(&token, "standup", NOW),
            Ok(Grant {
                identity: "alice".into(),
                name: Some("Alice".into()),
                can_publish: true,
                can_subscribe: false,
                can_record: false,
                expires_at: NOW + 3600,
            })
        );
    }

    #[test]
    fn a_token_for_any_room_admits_to_every_room() {
        let token = sign_with_secret(SECRET, &claims(ANY_ROOM)).expect("sign");
        assert!(verify(&token, "a", NOW).is_ok());
        assert!(verify(&token, "b", NOW).is_ok());
    }

    #[test]
    fn refusals_name_their_reason() {
        let token = sign_with_secret(SECRET, &claims("standup")).expect("sign");
        assert_eq!(
            verify(&token, "other", NOW),
            Err(TokenError::OtherRoom("standup".into()))
        );
        assert_eq!(
            verify(&token, "standup", NOW + 3600 + CLOCK_SKEW.as_secs() + 1),
            Err(TokenError::Expired)
        );
        let forged = sign_with_secret(b"another secret of thirty-two bytes!", &claims("standup"))
            .expect("sign");
        assert_eq!(
            verify(&forged, "standup", NOW),
            Err(TokenError::BadSignature)
        );
        let mut later = claims("standup");
        later.nbf = Some(NOW + 600);
        let later = sign_with_secret(SECRET, &later).expect("sign");
        assert_eq!(verify(&later, "standup", NOW), Err(TokenError::NotYetValid));
        assert!(matches!(
            verify("not.a.jwt", "standup", NOW),
            Err(TokenError::Malformed(_))
        ));
        let verifier = JoinVerifier::from_secret(SECRET).expect("key");
        assert_eq!(
            verifier.verify(None, "standup", NOW),
            Err(TokenError::Missing)
        );
    }

    #[test]
    fn expiry_tolerates_a_little_clock_skew() {
        let token = sign_with_secret(SECRET, &claims("standup")).expect("sign");
        assert!(verify(&token, "standup", NOW + 3600 + CLOCK_SKEW.as_secs()).is_ok());
    }

    #[test]
    fn a_token_without_expiry_is_malformed() {
        let header = Header::new(Algorithm::HS256);
        let body = serde_json::json!({"room": "standup", "sub": "alice"});
        let token = encode(&header, &body, &EncodingKey::from_secret(SECRET)).expect("sign");
        assert!(matches!(
            verify(&token, "standup", NOW),
            Err(TokenError::Malformed(_))
        ));
    }

    #[test]
    fn an_unsigned_token_is_refused() {
        // {"alg":"none"} with valid claims and no signature.
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body = b64.encode(serde_json::to_vec(&claims("standup")).expect("claims"));
        let token = format!("{header}.{body}.");
        // The JWT library knows no `none`: the header itself is refused.
        assert!(
            matches!(
                verify(&token, "standup", NOW),
                Err(TokenError::Malformed(_))
            ),
            "{:?}",
            verify(&token, "standup", NOW)
        );
    }

    #[test]
    fn a_token_signed_with_another_algorithm_is_refused_as_a_bad_signature() {
        // A well-formed header naming HS384, signed with the right secret: the algorithm
        // check (not the header's parsing) refuses it.
        let header = jsonwebtoken::Header::new(Algorithm::HS384);
        let key = jsonwebtoken::EncodingKey::from_secret(SECRET);
        let token = encode(&header, &claims("standup"), &key).expect("sign");
        assert_eq!(
            verify(&token, "standup", NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn tokens_signed_with_an_ed25519_private_key_verify_with_its_public_key() {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("key pair");
        let signing = EncodingKey::from_ed_pem(pair.serialize_pem().as_bytes()).expect("private");
        let verifier =
            JoinVerifier::from_public_key_pem(pair.public_key_pem().as_bytes()).expect("public");
        assert_eq!(verifier.algorithm(), Algorithm::EdDSA);
        let token =
            encode(&Header::new(Algorithm::EdDSA), &claims("standup"), &signing).expect("sign");
        assert!(verifier.verify(Some(&token), "standup", NOW).is_ok());
        // An HS256 token, even one "signed" with the public key's text, is refused.
        let forged = encode(
            &Header::new(Algorithm::HS256),
            &claims("standup"),
            &EncodingKey::from_secret(pair.public_key_pem().as_bytes()),
        )
        .expect("sign");
        assert_eq!(
            verifier.verify(Some(&forged), "standup", NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(matches!(
            JoinVerifier::from_secret(b"short"),
            Err(KeyError::ShortSecret)
        ));
    }
}
