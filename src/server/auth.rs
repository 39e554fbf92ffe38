//! Signed tokens (HS256 JWT): short-lived access tokens for the socket and
//! REST, longer-lived refresh credentials to get new ones.
//!
//! Expiry is checked here to the millisecond (`exp_ms`) with no leeway,
//! because scenarios set lifetimes of a few seconds and jsonwebtoken's own
//! check works in whole seconds with a 60 s default leeway.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Access,
    Refresh,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    /// Standard expiry in whole seconds, for other JWT readers.
    pub exp: i64,
    /// Expiry in milliseconds: what this server checks.
    pub exp_ms: i64,
    pub iat: i64,
    /// The user's token version when issued; revocation bumps it.
    pub ver: i64,
    pub typ: Kind,
    /// Makes two tokens issued in the same millisecond differ.
    pub jti: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed or badly signed token")]
    Invalid,
    #[error("token expired")]
    Expired,
    #[error("token revoked")]
    Revoked,
    #[error("wrong kind of token")]
    WrongKind,
}

pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl Tokens {
    pub fn new(secret: &str) -> Tokens {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        Tokens {
            encoding: EncodingKey::from_secret(secret.as_bytes())
                .expect("a non-empty secret (checked at the CLI)"),
            decoding: DecodingKey::from_secret(secret.as_bytes())
                .expect("a non-empty secret (checked at the CLI)"),
            validation,
        }
    }

    /// Issues a token; returns it with its expiry in epoch milliseconds.
    pub fn issue(
        &self,
        user: &str,
        kind: Kind,
        version: i64,
        now_ms: i64,
        ttl_ms: i64,
    ) -> (String, i64) {
        let exp_ms = now_ms + ttl_ms;
        let claims = Claims {
            sub: user.to_owned(),
            exp: (exp_ms + 999) / 1000,
            exp_ms,
            iat: now_ms / 1000,
            ver: version,
            typ: kind,
            jti: format!("{:016x}", rand::random::<u64>()),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 encoding cannot fail");
        (token, exp_ms)
    }

    /// Checks signature, kind and expiry; the caller checks the version
    /// against the store (revocation).
    pub fn verify(
        &self,
        token: &str,
        kind: Kind,
        now_ms: i64,
        check_expiry: bool,
    ) -> Result<Claims, TokenError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| TokenError::Invalid)?;
        let claims = data.claims;
        if claims.typ != kind {
            return Err(TokenError::WrongKind);
        }
        if check_expiry && now_ms >= claims.exp_ms {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_verify_expire() {
        let t = Tokens::new("s");
        let (tok, exp) = t.issue("u1", Kind::Access, 3, 1_000, 2_000);
        assert_eq!(exp, 3_000);
        let c = t.verify(&tok, Kind::Access, 2_999, true).unwrap();
        assert_eq!((c.sub.as_str(), c.ver), ("u1", 3));
        assert_eq!(
            t.verify(&tok, Kind::Access, 3_000, true).unwrap_err(),
            TokenError::Expired
        );
        assert!(t.verify(&tok, Kind::Access, 9_000, false).is_ok());
        assert_eq!(
            t.verify(&tok, Kind::Refresh, 0, true).unwrap_err(),
            TokenError::WrongKind
        );
        assert_eq!(
            Tokens::new("other")
                .verify(&tok, Kind::Access, 0, true)
                .unwrap_err(),
            TokenError::Invalid
        );
        assert_eq!(
            t.verify("garbage", Kind::Access, 0, true).unwrap_err(),
            TokenError::Invalid
        );
    }
}
