//! User administration.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use mamori_auth::model::{Role, Username};
use mamori_auth::service::UserListing;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, Caller, PasswordText};
use crate::state::AppState;

fn username(s: &str) -> Result<Username, ApiError> {
    // An invalid name in the path cannot exist.
    Username::parse(s).map_err(|_| ApiError::NotFound)
}

/// Lists users.
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<UserListing>>, ApiError> {
    Ok(Json(state.run(|auth| auth.list_users()).await?))
}

/// `POST /api/v1/users`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// The new user's name.
    pub username: Username,
    /// Their role.
    pub role: Role,
    /// An initial password; without one, a one-time password is generated. Either way it must
    /// be changed at first login.
    #[serde(default)]
    pub password: Option<PasswordText>,
}

/// Answer to user creation.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CreatedUser {
    /// The name.
    pub username: Username,
    /// The generated one-time password, if none was given. Shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub one_time_password: Option<String>,
}

/// Creates a user.
pub async fn create(
    State(state): State<AppState>,
    Caller(p): Caller,
    ApiJson(req): ApiJson<CreateUser>,
) -> Result<(StatusCode, Json<CreatedUser>), ApiError> {
    let name = req.username.clone();
    let one_time_password = state
        .run_hashing(move |auth| {
            auth.create_user(
                &p,
                req.username,
                req.role,
                req.password.as_ref().map(|p| p.as_str()),
            )
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedUser {
            username: name,
            one_time_password,
        }),
    ))
}

/// `PATCH /api/v1/users/{username}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    /// New role.
    #[serde(default)]
    pub role: Option<Role>,
    /// Disable (true) or enable (false).
    #[serde(default)]
    pub disabled: Option<bool>,
}

/// Changes a user's role or state.
pub async fn update(
    State(state): State<AppState>,
    Caller(p): Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<UpdateUser>,
) -> Result<StatusCode, ApiError> {
    let name = username(&name)?;
    if req.role.is_none() && req.disabled.is_none() {
        return Err(ApiError::BadRequest(
            "nothing to change: give role or disabled".into(),
        ));
    }
    state
        .run(move |auth| auth.update_user(&p, &name, req.role, req.disabled))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a user.
pub async fn delete(
    State(state): State<AppState>,
    Caller(p): Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let name = username(&name)?;
    state.run(move |auth| auth.delete_user(&p, &name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/users/{username}/reset`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    /// Also remove the user's second factor.
    #[serde(default)]
    pub reset_mfa: bool,
}

/// A generated one-time password, shown once.
#[derive(Debug, Serialize, JsonSchema)]
pub struct OneTimePassword {
    /// Must be changed at the next login.
    pub one_time_password: String,
}

/// Resets a user's credential.
pub async fn reset(
    State(state): State<AppState>,
    Caller(p): Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<ResetRequest>,
) -> Result<Json<OneTimePassword>, ApiError> {
    let name = username(&name)?;
    let one_time_password = state
        .run_hashing(move |auth| auth.reset_credentials(&p, &name, req.reset_mfa))
        .await?;
    Ok(Json(OneTimePassword { one_time_password }))
}
