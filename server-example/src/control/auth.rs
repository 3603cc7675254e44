//! Who is calling: our own session tokens (HS256 JWTs), issued after an
//! OpenID Connect ID token checks out (RS256 against the provider's JWKS), or,
//! only when enabled, after a dev sign-in by e-mail.

use std::time::{Duration, Instant};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use tokio::sync::RwLock;

use crate::db::{Db, is_unique_violation, new_id, now_ms};
use crate::error::{ServiceError, ServiceResult};

const SESSION_ISSUER: &str = "splitsound";

/// `auth` in the configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// HS256 secret of session tokens. When absent, one is generated and kept
    /// in `<data_dir>/session-secret` (fine for one machine; set it when the
    /// API runs on several).
    pub session_secret: Option<String>,
    pub session_ttl_secs: u64,
    /// `POST /v1/auth/dev/login` signs anyone in by e-mail alone. Off unless set.
    pub dev_login: bool,
    /// OpenID Connect providers whose ID tokens `POST /v1/auth/oauth/login` accepts.
    pub oidc: Vec<OidcProvider>,
    /// E-mail addresses whose sessions carry the admin claim.
    pub admin_emails: Vec<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            session_secret: None,
            session_ttl_secs: 12 * 3600,
            dev_login: false,
            oidc: Vec::new(),
            admin_emails: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcProvider {
    /// The `iss` the tokens carry.
    pub issuer: String,
    /// The `aud` they must carry: our client id at that provider.
    pub audience: String,
    /// Where its signing keys are: an `https://` JWKS URL or a local file.
    pub jwks: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionClaims {
    pub sub: String,
    pub email: String,
    #[serde(default)]
    pub admin: bool,
    pub iat: u64,
    pub exp: u64,
    pub iss: String,
}

/// The caller of a request that carried a valid session token.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: String,
    pub email: String,
    pub admin: bool,
}

pub struct Auth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl: Duration,
    admin_emails: Vec<String>,
    pub dev_login: bool,
    providers: Vec<OidcVerifier>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").field("dev_login", &self.dev_login).finish_non_exhaustive()
    }
}

impl Auth {
    pub fn new(cfg: &AuthConfig, secret: &[u8]) -> Auth {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default();
        Auth {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            ttl: Duration::from_secs(cfg.session_ttl_secs),
            admin_emails: cfg.admin_emails.iter().map(|e| e.to_lowercase()).collect(),
            dev_login: cfg.dev_login,
            providers: cfg
                .oidc
                .iter()
                .map(|p| OidcVerifier { cfg: p.clone(), keys: RwLock::new(None), http: http.clone() })
                .collect(),
        }
    }

    /// A session token for `user`. `verified` says whether an identity
    /// provider vouched for the e-mail address; only such sessions may carry
    /// the admin claim (a dev sign-in, by e-mail alone, never does).
    pub fn issue(&self, user_id: &str, email: &str, verified: bool) -> ServiceResult<(String, u64)> {
        let iat = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let claims = SessionClaims {
            sub: user_id.to_string(),
            email: email.to_string(),
            admin: verified && self.admin_emails.contains(&email.to_lowercase()),
            iat,
            exp: iat + self.ttl.as_secs(),
            iss: SESSION_ISSUER.into(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ServiceError::internal("signing a session", e))?;
        Ok((token, claims.exp))
    }

    /// Admin rights need both the session's claim and the address still on
    /// the configured list, so taking an address off revokes them at once.
    pub fn is_admin(&self, user: &AuthUser) -> bool {
        user.admin && self.admin_emails.contains(&user.email.to_lowercase())
    }

    pub fn verify_session(&self, token: &str) -> ServiceResult<SessionClaims> {
        let mut v = Validation::new(Algorithm::HS256);
        v.set_issuer(&[SESSION_ISSUER]);
        v.set_required_spec_claims(&["exp", "iss", "sub"]);
        v.leeway = 0;
        jsonwebtoken::decode::<SessionClaims>(token, &self.decoding, &v).map(|d| d.claims).map_err(|e| {
            ServiceError::unauthorized(match e.kind() {
                ErrorKind::ExpiredSignature => "the session has expired; sign in again",
                _ => "invalid session token",
            })
        })
    }

    /// Checks an ID token from one of the configured providers; returns its
    /// issuer and claims.
    pub async fn verify_id_token(&self, token: &str) -> ServiceResult<(String, IdClaims)> {
        let bad = |m: String| ServiceError::unauthorized(format!("invalid ID token: {m}"));
        // Which provider's keys to check it with: its issuer, read before any
        // check (the provider's `verify` then checks signature, issuer and all).
        #[derive(Deserialize)]
        struct Iss {
            iss: Option<String>,
        }
        let iss = jsonwebtoken::dangerous::insecure_decode_claims::<Iss>(token)
            .map_err(|_| bad("not a JWT".into()))?
            .iss
            .ok_or_else(|| bad("no iss".into()))?;
        let provider = self
            .providers
            .iter()
            .find(|p| p.cfg.issuer == iss)
            .ok_or_else(|| bad(format!("unknown issuer {iss:?}")))?;
        let claims = provider.verify(token).await?;
        if claims.email_verified == Some(false) {
            return Err(bad("the e-mail address is not verified".into()));
        }
        Ok((iss, claims))
    }
}

#[derive(Debug, Deserialize)]
pub struct IdClaims {
    pub sub: String,
    pub email: Option<String>,
    pub email_verified: Option<bool>,
    pub name: Option<String>,
}

struct OidcVerifier {
    cfg: OidcProvider,
    keys: RwLock<Option<(JwkSet, Instant)>>,
    http: reqwest::Client,
}

impl OidcVerifier {
    async fn fetch_keys(&self) -> ServiceResult<JwkSet> {
        let unavailable = |m: String| {
            ServiceError::new(
                crate::error::ErrorKind::BadGateway,
                "identity_provider_unavailable",
                format!("JWKS: {m}"),
            )
        };
        let text = if self.cfg.jwks.starts_with("https://") || self.cfg.jwks.starts_with("http://") {
            let resp = self.http.get(&self.cfg.jwks).send().await.map_err(|e| unavailable(e.to_string()))?;
            resp.error_for_status()
                .map_err(|e| unavailable(e.to_string()))?
                .text()
                .await
                .map_err(|e| unavailable(e.to_string()))?
        } else {
            tokio::fs::read_to_string(&self.cfg.jwks)
                .await
                .map_err(|e| unavailable(format!("{}: {e}", self.cfg.jwks)))?
        };
        serde_json::from_str(&text).map_err(|e| unavailable(e.to_string()))
    }

    /// The key for `kid`, fetching the set again (at most once a minute) when
    /// the kid is new: providers rotate keys.
    async fn key(&self, kid: Option<&str>) -> ServiceResult<DecodingKey> {
        let find = |set: &JwkSet| match kid {
            Some(k) => set.find(k).cloned(),
            None if set.keys.len() == 1 => set.keys.first().cloned(),
            None => None,
        };
        {
            let cached = self.keys.read().await;
            if let Some((set, fetched)) = cached.as_ref() {
                if let Some(jwk) = find(set) {
                    return DecodingKey::from_jwk(&jwk).map_err(|e| ServiceError::unauthorized(e.to_string()));
                }
                if fetched.elapsed() < Duration::from_secs(60) {
                    return Err(ServiceError::unauthorized("invalid ID token: unknown signing key"));
                }
            }
        }
        let set = self.fetch_keys().await?;
        let jwk = find(&set);
        *self.keys.write().await = Some((set, Instant::now()));
        let jwk = jwk.ok_or_else(|| ServiceError::unauthorized("invalid ID token: unknown signing key"))?;
        DecodingKey::from_jwk(&jwk).map_err(|e| ServiceError::unauthorized(e.to_string()))
    }

    async fn verify(&self, token: &str) -> ServiceResult<IdClaims> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| id_token_refused(&e))?;
        if header.alg != Algorithm::RS256 {
            return Err(ServiceError::unauthorized(format!(
                "invalid ID token: algorithm {:?}, expected RS256",
                header.alg
            )));
        }
        let key = self.key(header.kid.as_deref()).await?;
        let mut v = Validation::new(Algorithm::RS256);
        v.set_issuer(&[&self.cfg.issuer]);
        v.set_audience(&[&self.cfg.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.leeway = 60;
        jsonwebtoken::decode::<IdClaims>(token, &key, &v).map(|d| d.claims).map_err(|e| id_token_refused(&e))
    }
}

/// Why an ID token was refused, in the client's terms (not the JWT library's).
fn id_token_refused(e: &jsonwebtoken::errors::Error) -> ServiceError {
    let why = match e.kind() {
        ErrorKind::ExpiredSignature => "it has expired",
        ErrorKind::ImmatureSignature => "it is not valid yet",
        ErrorKind::InvalidAudience => "it was issued for another client",
        ErrorKind::InvalidIssuer => "it comes from another issuer",
        ErrorKind::InvalidSignature => "its signature does not match",
        ErrorKind::InvalidAlgorithm => "it is not signed with RS256",
        ErrorKind::MissingRequiredClaim(_) => "a required claim is missing",
        _ => "it is not a well-formed signed JWT",
    };
    ServiceError::unauthorized(format!("invalid ID token: {why}"))
}

/// The user for (issuer, subject), created with their signup credits on first sign-in.
pub async fn find_or_create_user(
    db: &Db,
    issuer: &str,
    subject: &str,
    email: &str,
    name: Option<&str>,
    signup_credits: i64,
) -> ServiceResult<String> {
    let find = || async {
        sqlx::query("SELECT id FROM users WHERE issuer = $1 AND subject = $2")
            .bind(issuer)
            .bind(subject)
            .fetch_optional(&db.pool)
            .await
            .map(|r| r.map(|r| r.get::<String, _>(0)))
    };
    if let Some(id) = find().await? {
        return Ok(id);
    }
    let id = new_id();
    let now = now_ms();
    let mut tx = db.pool.begin().await?;
    let inserted =
        sqlx::query("INSERT INTO users (id, email, issuer, subject, name, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&id)
            .bind(email)
            .bind(issuer)
            .bind(subject)
            .bind(name)
            .bind(now)
            .execute(&mut *tx)
            .await;
    match inserted {
        Err(e) if is_unique_violation(&e) => {
            drop(tx);
            return find().await?.ok_or_else(|| ServiceError::internal("sign-in", "user vanished"));
        }
        r => r?,
    };
    sqlx::query("INSERT INTO credit_accounts (user_id, balance, updated_at) VALUES ($1, 0, $2)")
        .bind(&id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    if signup_credits > 0 {
        super::credits::insert_entry(&mut tx, &id, signup_credits, "signup", &format!("signup:{id}"), None).await?;
    }
    tx.commit().await?;
    Ok(id)
}

/// The caller a verified session names, if its user still exists.
pub async fn session_user(db: &Db, claims: SessionClaims) -> ServiceResult<AuthUser> {
    // A validly signed session of a user that no longer exists is no session.
    let Some(user) =
        sqlx::query("SELECT issuer FROM users WHERE id = $1").bind(&claims.sub).fetch_optional(&db.pool).await?
    else {
        return Err(ServiceError::unauthorized("the session's user no longer exists; sign in again"));
    };
    // A user signed in by the dev sign-in is never an admin, whatever an
    // older session says.
    let dev = user.try_get::<String, _>(0)? == "dev";
    Ok(AuthUser { id: claims.sub, email: claims.email, admin: claims.admin && !dev })
}

/// A user's e-mail address, name and sign-up time (Unix ms), if the user exists.
pub async fn profile(db: &Db, id: &str) -> sqlx::Result<Option<(String, Option<String>, i64)>> {
    let row = sqlx::query("SELECT email, name, created_at FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(&db.pool)
        .await?;
    row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))).transpose()
}
