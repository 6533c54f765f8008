//! API tokens for automation: stored hashed, role-scoped, expiring.

use mamori_audit::{Event, EventKind, Outcome};
use serde_json::json;

use super::*;

/// A stored API token (only its hash is kept).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct TokenRecord {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) username: Username,
    pub(super) role: Role,
    pub(super) created_at: u64,
    pub(super) expires_at: u64,
}

fn token_key(token: &str) -> String {
    HEXLOWER.encode(&digest::sha256(token.as_bytes()))
}

impl AuthService {
    /// Deletes every token of a user inside a transaction; returns how many.
    pub(super) fn delete_tokens_of(
        tx: &mut mamori_store::WriteTxn<'_>,
        username: &Username,
    ) -> Result<usize, AuthError> {
        let mut n = 0;
        for (key, t) in tx.list::<TokenRecord>(Table::Tokens)? {
            if &t.username == username {
                tx.delete(Table::Tokens, &key)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Creates an API token for the caller, with a role no higher than the caller's.
    pub fn create_token(
        &self,
        p: &Principal,
        name: &str,
        role: Role,
        days: u32,
    ) -> Result<NewToken, AuthError> {
        p.session_hash()?;
        if !p.role.can_grant(role) {
            return Err(AuthError::Forbidden);
        }
        if !(1..=365).contains(&days) {
            return Err(AuthError::InvalidRequest(Invalid::TokenDays));
        }
        let token = format!(
            "{TOKEN_PREFIX}{}",
            BASE32_NOPAD.encode(&random::bytes::<32>()?).to_lowercase()
        );
        let key = token_key(&token);
        let now = self.now();
        let record = TokenRecord {
            id: key[..16].to_string(),
            name: name.to_string(),
            username: p.username.clone(),
            role,
            created_at: now,
            expires_at: now + u64::from(days) * 86_400,
        };
        self.store.write(|tx| {
            let mine = tx
                .list::<TokenRecord>(Table::Tokens)?
                .into_iter()
                .filter(|(_, t)| t.username == p.username)
                .count();
            if mine >= MAX_TOKENS_PER_USER {
                return Err(AuthError::Conflict(Conflict::TokenLimit {
                    max: MAX_TOKENS_PER_USER,
                }));
            }
            tx.put(Table::Tokens, &key, &record)?;
            Ok(())
        })?;
        self.record_by(
            p,
            EventKind::TokenCreated,
            json!({"token": record.id, "name": name, "role": role, "days": days}),
        );
        Ok(NewToken {
            id: record.id,
            token,
            expires_at: record.expires_at,
        })
    }

    /// Authenticates a request by an API token.
    pub fn authenticate_token(&self, token: &str, origin: Origin) -> Result<Principal, AuthError> {
        if !token.starts_with(TOKEN_PREFIX) || token.len() > 128 {
            return Err(AuthError::Unauthenticated);
        }
        let now = self.now();
        let record: TokenRecord = self
            .store
            .get(Table::Tokens, &token_key(token))?
            .ok_or(AuthError::Unauthenticated)?;
        if record.expires_at <= now {
            return Err(AuthError::Unauthenticated);
        }
        let user: User = self
            .store
            .get(Table::Users, record.username.as_str())?
            .ok_or(AuthError::Unauthenticated)?;
        // A token never outranks its owner's current role, and dies with a disabled account.
        if user.disabled || !user.role.can_grant(record.role) {
            return Err(AuthError::Unauthenticated);
        }
        let first_use = {
            let mut v = self.volatile();
            v.token_last_used.insert(record.id.clone(), now);
            v.tokens_seen.insert(record.id.clone())
        };
        if first_use {
            self.record(
                Event::new(EventKind::TokenUsed, Outcome::Success)
                    .actor(record.username.as_str())
                    .source(origin.label())
                    .details(json!({"token": record.id})),
            );
        }
        Ok(Principal {
            username: record.username,
            role: record.role,
            via: Via::Token { id: record.id },
            origin,
            restriction: None,
            reauth_until: None,
        })
    }

    /// The caller's tokens.
    pub fn list_tokens(&self, p: &Principal) -> Result<Vec<TokenListing>, AuthError> {
        let v = self.volatile();
        let last = v.token_last_used.clone();
        drop(v);
        Ok(self
            .store
            .list::<TokenRecord>(Table::Tokens)?
            .into_iter()
            .filter(|(_, t)| t.username == p.username)
            .map(|(_, t)| TokenListing {
                last_used_at: last.get(&t.id).copied(),
                id: t.id,
                name: t.name,
                role: t.role,
                created_at: t.created_at,
                expires_at: t.expires_at,
            })
            .collect())
    }

    /// Revokes one of the caller's tokens.
    pub fn revoke_token(&self, p: &Principal, id: &str) -> Result<(), AuthError> {
        self.store.write(|tx| {
            let found = tx
                .list::<TokenRecord>(Table::Tokens)?
                .into_iter()
                .find(|(_, t)| t.username == p.username && t.id == id);
            let (key, _) = found.ok_or(AuthError::NotFound("token"))?;
            tx.delete(Table::Tokens, &key)?;
            Ok::<_, AuthError>(())
        })?;
        self.record_by(p, EventKind::TokenRevoked, json!({"token": id}));
        Ok(())
    }
}
