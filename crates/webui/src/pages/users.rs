//! User administration: the list of users, creating one with a generated one-time password,
//! changing a role or the enabled state, resetting credentials, deleting.
//!
//! Passwords are never typed here: a new or reset account gets a one-time password that is
//! shown once and must be changed at the first login.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use mamori_auth::model::{Role, Username};
use mamori_auth::service::UserListing;
use mamori_auth::{AuthError, Conflict};
use mamori_http::AppState;
use mamori_http::error::ApiError;
use mamori_http::extract::Caller;
use serde::Deserialize;

use crate::form::{Field, Form, checkbox};
use crate::i18n::{Lang, error_message};
use crate::page::{Layout, PageCtx, error_page, render, render_status, see_other, when};

struct Texts {
    title: &'static str,
    intro: &'static str,
    list_h: &'static str,
    col_user: &'static str,
    col_role: &'static str,
    col_status: &'static str,
    col_mfa: &'static str,
    col_must_change: &'static str,
    col_locked: &'static str,
    col_created: &'static str,
    col_actions: &'static str,
    you: &'static str,
    enabled: &'static str,
    disabled: &'static str,
    disable: &'static str,
    yes: &'static str,
    no: &'static str,
    not_locked: &'static str,
    save: &'static str,
    save_self_confirm: &'static str,
    reset: &'static str,
    reset_mfa: &'static str,
    reset_confirm: &'static str,
    delete: &'static str,
    delete_confirm: &'static str,
    create_h: &'static str,
    create_intro: &'static str,
    username: &'static str,
    username_hint: &'static str,
    role: &'static str,
    create: &'static str,
    roles_h: &'static str,
    roles_own: &'static str,
    admin: &'static str,
    admin_desc: &'static str,
    operator: &'static str,
    operator_desc: &'static str,
    viewer: &'static str,
    viewer_desc: &'static str,
    auditor: &'static str,
    auditor_desc: &'static str,
    done_updated: &'static str,
    done_unchanged: &'static str,
    done_deleted: &'static str,
    bad_username: &'static str,
    bad_role: &'static str,
    may_not_grant: &'static str,
    exists: &'static str,
    last_admin: &'static str,
    delete_self: &'static str,
    no_such_user: &'static str,
    created_title: &'static str,
    reset_title: &'static str,
    secret_for: &'static str,
    secret_label: &'static str,
    secret_once: &'static str,
    created_note: &'static str,
    reset_note: &'static str,
    reset_mfa_note: &'static str,
    secret_done: &'static str,
}

const EN: Texts = Texts {
    title: "Users",
    intro: "Everyone who may log in to this device. Changing a user's role or state, or resetting their credentials, ends their sessions.",
    list_h: "Users",
    col_user: "User",
    col_role: "Role",
    col_status: "State",
    col_mfa: "Second factor",
    col_must_change: "Must change password",
    col_locked: "Locked until",
    col_created: "Created",
    col_actions: "Actions",
    you: "(you)",
    enabled: "Enabled",
    disabled: "Disabled",
    disable: "Disabled",
    yes: "Yes",
    no: "No",
    not_locked: "Not locked",
    save: "Save",
    save_self_confirm: "This is your own account. Saving a change ends all your sessions, including this one, and you will have to log in again. Continue?",
    reset: "Reset password",
    reset_mfa: "Also remove second factor",
    reset_confirm: "Reset this user's password? A new one-time password is generated; their sessions end, their API tokens are revoked and a lock is cleared.",
    delete: "Delete",
    delete_confirm: "Delete this user? Their sessions end and their API tokens are revoked. This cannot be undone.",
    create_h: "Add a user",
    create_intro: "A one-time password is generated for the new user and shown once. They must change it at their first login.",
    username: "Username",
    username_hint: "1–32 characters: lowercase letters a–z, digits, \".\", \"_\" and \"-\", starting with a letter or \"_\".",
    role: "Role",
    create: "Add user",
    roles_h: "Roles",
    roles_own: "Every user can change their own password, second factors and API tokens.",
    admin: "Administrator (admin)",
    admin_desc: "Full control of the device, including users and security settings.",
    operator: "Operator (operator)",
    operator_desc: "Operates the device: sees its status, but cannot manage users or security settings.",
    viewer: "Viewer (viewer)",
    viewer_desc: "Sees the device's status only.",
    auditor: "Auditor (auditor)",
    auditor_desc: "Reads the audit log and the device's status; changes nothing.",
    done_updated: "The user was changed. Their sessions were ended.",
    done_unchanged: "Nothing was changed.",
    done_deleted: "The user was deleted.",
    bad_username: "This username cannot be used. Use 1–32 characters: lowercase letters a–z, digits, \".\", \"_\" and \"-\", starting with a letter or \"_\".",
    bad_role: "Choose a role from the list.",
    may_not_grant: "You may not give this role.",
    exists: "A user with this name already exists.",
    last_admin: "This would leave the device without an enabled administrator.",
    delete_self: "You cannot delete your own account.",
    no_such_user: "This user no longer exists.",
    created_title: "User added",
    reset_title: "Password reset",
    secret_for: "One-time password for",
    secret_label: "One-time password",
    secret_once: "Give this password to the user in a safe way now. It will not be shown again. It must be changed at the first login.",
    created_note: "The user logs in with this password and then chooses their own.",
    reset_note: "The user's sessions were ended, their API tokens revoked and any lock cleared.",
    reset_mfa_note: "Their second factors and recovery codes were removed.",
    secret_done: "Back to users",
};

const JA: Texts = Texts {
    title: "ユーザー",
    intro: "この機器にログインできるユーザーの一覧です。ロールや状態を変更したり、パスワードをリセットしたりすると、そのユーザーのセッションは終了します。",
    list_h: "ユーザー一覧",
    col_user: "ユーザー",
    col_role: "ロール",
    col_status: "状態",
    col_mfa: "二要素認証",
    col_must_change: "パスワード変更が必要",
    col_locked: "ロック期限",
    col_created: "作成日時",
    col_actions: "操作",
    you: "(あなた)",
    enabled: "有効",
    disabled: "無効",
    disable: "無効にする",
    yes: "はい",
    no: "いいえ",
    not_locked: "ロックなし",
    save: "保存",
    save_self_confirm: "これはあなた自身のアカウントです。変更を保存すると、このセッションを含むすべてのセッションが終了し、再度ログインが必要になります。続けますか?",
    reset: "パスワードをリセット",
    reset_mfa: "二要素認証も削除する",
    reset_confirm: "このユーザーのパスワードをリセットしますか? 新しい一時パスワードが発行され、セッションは終了し、API トークンは無効になり、ロックは解除されます。",
    delete: "削除",
    delete_confirm: "このユーザーを削除しますか? セッションは終了し、API トークンは無効になります。この操作は元に戻せません。",
    create_h: "ユーザーの追加",
    create_intro: "新しいユーザーには一時パスワードが発行され、1 回だけ表示されます。最初のログイン時に変更が必要です。",
    username: "ユーザー名",
    username_hint: "1〜32 文字。英小文字 (a〜z)、数字、「.」「_」「-」が使えます。先頭は英小文字または「_」です。",
    role: "ロール",
    create: "ユーザーを追加",
    roles_h: "ロール",
    roles_own: "どのユーザーも、自分のパスワード、二要素認証、API トークンを変更できます。",
    admin: "管理者 (admin)",
    admin_desc: "ユーザーやセキュリティ設定を含め、機器のすべてを管理できます。",
    operator: "オペレーター (operator)",
    operator_desc: "機器を運用します。状態を確認できますが、ユーザーやセキュリティ設定は管理できません。",
    viewer: "閲覧者 (viewer)",
    viewer_desc: "機器の状態の確認だけができます。",
    auditor: "監査者 (auditor)",
    auditor_desc: "監査ログと機器の状態を確認できます。変更はできません。",
    done_updated: "ユーザーを変更しました。そのユーザーのセッションは終了しました。",
    done_unchanged: "変更はありませんでした。",
    done_deleted: "ユーザーを削除しました。",
    bad_username: "このユーザー名は使えません。1〜32 文字で、英小文字 (a〜z)、数字、「.」「_」「-」を使い、先頭は英小文字または「_」にしてください。",
    bad_role: "一覧からロールを選んでください。",
    may_not_grant: "このロールを付与する権限がありません。",
    exists: "この名前のユーザーはすでに存在します。",
    last_admin: "この変更を行うと、有効な管理者がいなくなります。",
    delete_self: "自分自身のアカウントは削除できません。",
    no_such_user: "このユーザーは存在しません。",
    created_title: "ユーザーを追加しました",
    reset_title: "パスワードをリセットしました",
    secret_for: "一時パスワードの発行先",
    secret_label: "一時パスワード",
    secret_once: "このパスワードを安全な方法でユーザーに伝えてください。二度と表示されません。最初のログイン時に変更が必要です。",
    created_note: "ユーザーはこのパスワードでログインし、その後ご自身のパスワードを設定します。",
    reset_note: "このユーザーのセッションは終了し、API トークンは無効になり、ロックは解除されました。",
    reset_mfa_note: "二要素認証の設定とリカバリーコードも削除しました。",
    secret_done: "ユーザー一覧に戻る",
};

fn texts(lang: Lang) -> &'static Texts {
    lang.pick(&EN, &JA)
}

/// The roles in the order the page lists them: most to least privileged, the auditor apart.
const ROLE_ORDER: [Role; 4] = [Role::Admin, Role::Operator, Role::Viewer, Role::Auditor];

fn role_name(t: &Texts, r: Role) -> &'static str {
    match r {
        Role::Admin => t.admin,
        Role::Operator => t.operator,
        Role::Viewer => t.viewer,
        Role::Auditor => t.auditor,
    }
}

fn role_desc(t: &Texts, r: Role) -> &'static str {
    match r {
        Role::Admin => t.admin_desc,
        Role::Operator => t.operator_desc,
        Role::Viewer => t.viewer_desc,
        Role::Auditor => t.auditor_desc,
    }
}

fn parse_role(s: &str) -> Option<Role> {
    Role::ALL.into_iter().find(|r| r.as_str() == s)
}

/// The success message for `?done=…`. Only known words map to a text; anything else shows
/// nothing (the query is never echoed).
fn notice(t: &'static Texts, done: Option<&str>) -> Option<&'static str> {
    match done? {
        "updated" => Some(t.done_updated),
        "unchanged" => Some(t.done_unchanged),
        "deleted" => Some(t.done_deleted),
        _ => None,
    }
}

struct RoleOption {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

struct RoleHelp {
    name: &'static str,
    desc: &'static str,
}

struct UserRow {
    name: String,
    roles: Vec<RoleOption>,
    disabled: bool,
    mfa: bool,
    must_change: bool,
    locked_until: Option<String>,
    created: String,
    is_self: bool,
}

/// Where a refusal is shown: above everything, at the create form, or in a user's row.
#[derive(Debug, Clone, PartialEq, Eq)]
enum At {
    Top,
    Create,
    User(String),
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    layout: Layout,
    t: &'static Texts,
    rows: Vec<UserRow>,
    create_roles: Vec<RoleOption>,
    roles_help: Vec<RoleHelp>,
    new_username: String,
    notice: Option<&'static str>,
    error: Option<String>,
    /// "top", "create", "user" or "".
    error_at: &'static str,
    /// The row of the refusal, when `error_at` is "user".
    error_user: String,
}

#[derive(Template)]
#[template(path = "user_secret.html")]
struct SecretPage<'a> {
    layout: Layout,
    t: &'static Texts,
    title: &'static str,
    username: &'a str,
    password: &'a str,
    reset: bool,
    mfa_removed: bool,
}

/// What the create form held, to show it again after a refusal.
struct Typed {
    username: String,
    role: Role,
}

impl Default for Typed {
    fn default() -> Self {
        Self {
            username: String::new(),
            role: Role::Viewer,
        }
    }
}

fn options(t: &Texts, caller: Role, current: Role) -> Vec<RoleOption> {
    ROLE_ORDER
        .into_iter()
        .filter(|r| *r == current || caller.can_grant(*r))
        .map(|r| RoleOption {
            value: r.as_str(),
            label: role_name(t, r),
            selected: r == current,
        })
        .collect()
}

async fn page(
    state: &AppState,
    ctx: &PageCtx,
    notice: Option<&'static str>,
    problem: Option<(At, String)>,
    typed: Typed,
) -> Result<UsersPage, Response> {
    let p = ctx.caller().ok_or_else(|| see_other("/ui/login"))?.clone();
    let mut users: Vec<UserListing> = state.run(|auth| auth.list_users()).await.map_err(|e| {
        error_page(
            Some(ctx),
            StatusCode::SERVICE_UNAVAILABLE,
            &error_message(ctx.lang, &e),
        )
    })?;
    users.sort_by(|a, b| a.username.as_str().cmp(b.username.as_str()));
    let t = texts(ctx.lang);
    // A refusal about a row that is no longer there goes to the top.
    let problem = problem.map(|(at, m)| match at {
        At::User(u) if !users.iter().any(|x| x.username.as_str() == u) => (At::Top, m),
        at => (at, m),
    });
    let (error, error_at, error_user) = match problem {
        None => (None, "", String::new()),
        Some((At::Top, m)) => (Some(m), "top", String::new()),
        Some((At::Create, m)) => (Some(m), "create", String::new()),
        Some((At::User(u), m)) => (Some(m), "user", u),
    };
    Ok(UsersPage {
        layout: ctx.layout("users"),
        t,
        rows: users
            .into_iter()
            .map(|u| UserRow {
                roles: options(t, p.role, u.role),
                is_self: u.username == p.username,
                name: u.username.as_str().to_string(),
                disabled: u.disabled,
                mfa: u.mfa_enabled,
                must_change: u.must_change_password,
                locked_until: u.locked_until.map(when),
                created: when(u.created_at),
            })
            .collect(),
        create_roles: ROLE_ORDER
            .into_iter()
            .filter(|r| p.role.can_grant(*r))
            .map(|r| RoleOption {
                value: r.as_str(),
                label: role_name(t, r),
                selected: r == typed.role,
            })
            .collect(),
        roles_help: ROLE_ORDER
            .into_iter()
            .map(|r| RoleHelp {
                name: role_name(t, r),
                desc: role_desc(t, r),
            })
            .collect(),
        new_username: typed.username,
        notice,
        error,
        error_at,
        error_user,
    })
}

#[derive(Debug, Deserialize)]
pub struct DoneQuery {
    #[serde(default)]
    done: Option<String>,
}

/// `GET /ui/users`.
pub async fn show(
    State(state): State<AppState>,
    ctx: PageCtx,
    Query(q): Query<DoneQuery>,
) -> Response {
    let notice = notice(texts(ctx.lang), q.done.as_deref());
    match page(&state, &ctx, notice, None, Typed::default()).await {
        Ok(p) => render(&p),
        Err(r) => r,
    }
}

/// The users page again, with a refusal where it belongs.
async fn refused(
    state: &AppState,
    ctx: &PageCtx,
    status: StatusCode,
    at: At,
    message: String,
    typed: Typed,
) -> Response {
    match page(state, ctx, None, Some((at, message)), typed).await {
        Ok(p) => render_status(status, &p),
        Err(r) => r,
    }
}

fn status_of(e: &ApiError) -> StatusCode {
    match e {
        ApiError::Auth(AuthError::Forbidden) => StatusCode::FORBIDDEN,
        ApiError::Auth(AuthError::NotFound(_)) | ApiError::NotFound => StatusCode::NOT_FOUND,
        ApiError::Auth(AuthError::Conflict(_)) => StatusCode::CONFLICT,
        ApiError::Auth(AuthError::TooManyAttempts { .. }) => StatusCode::TOO_MANY_REQUESTS,
        ApiError::Busy => StatusCode::SERVICE_UNAVAILABLE,
        ApiError::Internal(_) | ApiError::Auth(AuthError::Internal(_)) => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

/// The action a refusal answers; it decides what the service's conflicts mean.
#[derive(Debug, Clone, Copy)]
enum Action {
    Create,
    Update,
    Delete,
    Reset,
}

/// A refusal of the service in the user's language, by its typed reason (never its English
/// wording); the action tells what a refused role means.
fn refusal(lang: Lang, action: Action, e: &ApiError) -> String {
    let t = texts(lang);
    match (action, e) {
        (_, ApiError::Auth(AuthError::Conflict(Conflict::UserExists(_)))) => t.exists.into(),
        (_, ApiError::Auth(AuthError::Conflict(Conflict::LastAdmin))) => t.last_admin.into(),
        (Action::Create | Action::Update, ApiError::Auth(AuthError::Forbidden)) => {
            t.may_not_grant.into()
        }
        (_, ApiError::Auth(AuthError::NotFound(_)) | ApiError::NotFound) => t.no_such_user.into(),
        _ => error_message(lang, e),
    }
}

/// The answer to a username in the path that cannot exist: a missing page.
fn no_such_page(ctx: &PageCtx) -> Response {
    error_page(
        Some(ctx),
        StatusCode::NOT_FOUND,
        &error_message(ctx.lang, &ApiError::NotFound),
    )
}

#[derive(Debug, Deserialize)]
pub struct CreateForm {
    username: Field<64>,
    role: Field<16>,
}

/// `POST /ui/users`: creates a user with a generated one-time password and shows it once.
pub async fn create(
    State(state): State<AppState>,
    ctx: PageCtx,
    Caller(p): Caller,
    Form(f): Form<CreateForm>,
) -> Response {
    let t = texts(ctx.lang);
    let typed = Typed {
        username: f.username.as_str().to_string(),
        role: parse_role(f.role.as_str()).unwrap_or(Role::Viewer),
    };
    let Some(role) = parse_role(f.role.as_str()) else {
        let m = t.bad_role.into();
        return refused(
            &state,
            &ctx,
            StatusCode::UNPROCESSABLE_ENTITY,
            At::Create,
            m,
            typed,
        )
        .await;
    };
    let Ok(username) = Username::parse(f.username.as_str().trim()) else {
        let m = t.bad_username.into();
        return refused(
            &state,
            &ctx,
            StatusCode::UNPROCESSABLE_ENTITY,
            At::Create,
            m,
            typed,
        )
        .await;
    };
    let name = username.as_str().to_string();
    match state
        .run_hashing(move |auth| auth.create_user(&p, username, role, None))
        .await
    {
        Ok(Some(password)) => render(&SecretPage {
            layout: ctx.layout("users"),
            t,
            title: t.created_title,
            username: &name,
            password: &password,
            reset: false,
            mfa_removed: false,
        }),
        // Without a typed password the service always generates one.
        Ok(None) => error_page(
            Some(&ctx),
            StatusCode::INTERNAL_SERVER_ERROR,
            &error_message(ctx.lang, &ApiError::Internal(String::new())),
        ),
        Err(e) => {
            let m = refusal(ctx.lang, Action::Create, &e);
            refused(&state, &ctx, status_of(&e), At::Create, m, typed).await
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct UpdateForm {
    role: Field<16>,
    #[serde(default, deserialize_with = "checkbox")]
    disabled: bool,
}

/// `POST /ui/users/{name}`: changes the role and the enabled state. Only what differs from
/// the stored account is sent, so saving an unchanged row ends nobody's sessions.
pub async fn update(
    State(state): State<AppState>,
    ctx: PageCtx,
    Caller(p): Caller,
    Path(name): Path<String>,
    Form(f): Form<UpdateForm>,
) -> Response {
    let Ok(username) = Username::parse(&name) else {
        return no_such_page(&ctx);
    };
    let t = texts(ctx.lang);
    let at = At::User(username.as_str().to_string());
    let Some(role) = parse_role(f.role.as_str()) else {
        let m = t.bad_role.into();
        let status = StatusCode::UNPROCESSABLE_ENTITY;
        return refused(&state, &ctx, status, at, m, Typed::default()).await;
    };
    let current = state
        .run(|auth| auth.list_users())
        .await
        .map(|users| users.into_iter().find(|u| u.username == username));
    let current = match current {
        Ok(Some(u)) => u,
        Ok(None) => {
            let e = ApiError::Auth(AuthError::NotFound("user"));
            let m = refusal(ctx.lang, Action::Update, &e);
            return refused(&state, &ctx, status_of(&e), At::Top, m, Typed::default()).await;
        }
        Err(e) => {
            let m = refusal(ctx.lang, Action::Update, &e);
            return refused(&state, &ctx, status_of(&e), at, m, Typed::default()).await;
        }
    };
    let role = (role != current.role).then_some(role);
    let disabled = (f.disabled != current.disabled).then_some(f.disabled);
    if role.is_none() && disabled.is_none() {
        return see_other("/ui/users?done=unchanged");
    }
    match state
        .run(move |auth| auth.update_user(&p, &username, role, disabled))
        .await
    {
        Ok(()) => see_other("/ui/users?done=updated"),
        Err(e) => {
            let at = if matches!(e, ApiError::Auth(AuthError::NotFound(_))) {
                At::Top
            } else {
                at
            };
            let m = refusal(ctx.lang, Action::Update, &e);
            refused(&state, &ctx, status_of(&e), at, m, Typed::default()).await
        }
    }
}

/// `POST /ui/users/{name}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    ctx: PageCtx,
    Caller(p): Caller,
    Path(name): Path<String>,
) -> Response {
    let Ok(username) = Username::parse(&name) else {
        return no_such_page(&ctx);
    };
    let at = At::User(username.as_str().to_string());
    if username == p.username {
        let m = texts(ctx.lang).delete_self.into();
        return refused(&state, &ctx, StatusCode::CONFLICT, at, m, Typed::default()).await;
    }
    match state.run(move |auth| auth.delete_user(&p, &username)).await {
        Ok(()) => see_other("/ui/users?done=deleted"),
        Err(e) => {
            let at = if matches!(e, ApiError::Auth(AuthError::NotFound(_))) {
                At::Top
            } else {
                at
            };
            let m = refusal(ctx.lang, Action::Delete, &e);
            refused(&state, &ctx, status_of(&e), at, m, Typed::default()).await
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct ResetForm {
    #[serde(default, deserialize_with = "checkbox")]
    reset_mfa: bool,
}

/// `POST /ui/users/{name}/reset`: a new one-time password, shown once.
pub async fn reset(
    State(state): State<AppState>,
    ctx: PageCtx,
    Caller(p): Caller,
    Path(name): Path<String>,
    Form(f): Form<ResetForm>,
) -> Response {
    let Ok(username) = Username::parse(&name) else {
        return no_such_page(&ctx);
    };
    let name = username.as_str().to_string();
    let reset_mfa = f.reset_mfa;
    match state
        .run_hashing(move |auth| auth.reset_credentials(&p, &username, reset_mfa))
        .await
    {
        Ok(password) => {
            let t = texts(ctx.lang);
            render(&SecretPage {
                layout: ctx.layout("users"),
                t,
                title: t.reset_title,
                username: &name,
                password: &password,
                reset: true,
                mfa_removed: reset_mfa,
            })
        }
        Err(e) => {
            let at = if matches!(e, ApiError::Auth(AuthError::NotFound(_))) {
                At::Top
            } else {
                At::User(name)
            };
            let m = refusal(ctx.lang, Action::Reset, &e);
            refused(&state, &ctx, status_of(&e), at, m, Typed::default()).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_done_words_give_a_message() {
        assert_eq!(notice(&EN, Some("updated")), Some(EN.done_updated));
        assert_eq!(notice(&JA, Some("deleted")), Some(JA.done_deleted));
        assert_eq!(notice(&EN, Some("unchanged")), Some(EN.done_unchanged));
        for other in [
            "",
            "Updated",
            "<script>alert(1)</script>",
            "updated ",
            "created",
        ] {
            assert_eq!(notice(&EN, Some(other)), None, "{other:?}");
        }
        assert_eq!(notice(&EN, None), None);
    }

    #[test]
    fn roles_parse_only_by_their_api_names() {
        for r in Role::ALL {
            assert_eq!(parse_role(r.as_str()), Some(r));
        }
        assert_eq!(parse_role("Admin"), None);
        assert_eq!(parse_role("root"), None);
        assert_eq!(parse_role(""), None);
    }

    #[test]
    fn an_operator_is_offered_only_what_it_may_grant_plus_the_current_role() {
        let values = |caller, current| -> Vec<&str> {
            options(&EN, caller, current)
                .into_iter()
                .map(|o| o.value)
                .collect()
        };
        assert_eq!(
            values(Role::Admin, Role::Viewer),
            ["admin", "operator", "viewer", "auditor"]
        );
        assert_eq!(
            values(Role::Operator, Role::Admin),
            ["admin", "operator", "viewer"]
        );
        let selected: Vec<_> = options(&EN, Role::Admin, Role::Auditor)
            .into_iter()
            .filter(|o| o.selected)
            .map(|o| o.value)
            .collect();
        assert_eq!(selected, ["auditor"]);
    }

    #[test]
    fn conflicts_are_explained_by_the_action_not_echoed() {
        let taken = ApiError::Auth(AuthError::Conflict(Conflict::UserExists(
            Username::parse("x").unwrap(),
        )));
        assert_eq!(refusal(Lang::Ja, Action::Create, &taken), JA.exists);
        let last = ApiError::Auth(AuthError::Conflict(Conflict::LastAdmin));
        assert_eq!(refusal(Lang::En, Action::Delete, &last), EN.last_admin);
        assert_eq!(refusal(Lang::En, Action::Update, &last), EN.last_admin);
        let own = ApiError::Auth(AuthError::Conflict(Conflict::DeleteSelf));
        let ja = refusal(Lang::Ja, Action::Delete, &own);
        assert!(ja.contains("自分") && !ja.contains("account"), "{ja}");
        let missing = ApiError::Auth(AuthError::NotFound("user"));
        assert_eq!(refusal(Lang::Ja, Action::Reset, &missing), JA.no_such_user);
        let forbidden = ApiError::Auth(AuthError::Forbidden);
        assert_eq!(
            refusal(Lang::En, Action::Create, &forbidden),
            EN.may_not_grant
        );
    }

    fn ctx(lang: Lang) -> PageCtx {
        PageCtx {
            lang,
            csrf: "tok".into(),
            principal: None,
            path: "/ui/users".into(),
            host: String::new(),
        }
    }

    fn row(name: &str, is_self: bool) -> UserRow {
        UserRow {
            name: name.into(),
            roles: options(&EN, Role::Admin, Role::Viewer),
            disabled: false,
            mfa: true,
            must_change: false,
            locked_until: Some("2026-11-22 10:04 UTC".into()),
            created: "2026-11-01 09:00 UTC".into(),
            is_self,
        }
    }

    /// The part of the page that is one user's row.
    fn row_html<'a>(html: &'a str, name: &str) -> &'a str {
        let start = html
            .find(&format!("<tr data-user=\"{name}\">"))
            .expect("row");
        let end = html[start..].find("</tr>").expect("row end");
        &html[start..start + end]
    }

    #[test]
    fn the_page_has_the_promised_elements_and_errors_sit_in_their_row() {
        let c = ctx(Lang::Ja);
        let html = UsersPage {
            layout: c.layout("users"),
            t: &JA,
            rows: vec![row("admin", true), row("alice", false)],
            create_roles: options(&JA, Role::Admin, Role::Viewer),
            roles_help: Vec::new(),
            new_username: "<b>x</b>".into(),
            notice: None,
            error: Some(JA.last_admin.into()),
            error_at: "user",
            error_user: "alice".into(),
        }
        .render()
        .expect("renders");
        for id in [
            "id=\"new-username\"",
            "id=\"new-role\"",
            "id=\"create-user\"",
        ] {
            assert!(html.contains(id), "{id}");
        }
        // What was typed comes back escaped.
        assert!(html.contains("value=\"&#60;b&#62;x&#60;/b&#62;\""));
        assert!(!html.contains("<b>x</b>"));
        let own = row_html(&html, "admin");
        assert!(own.contains("class=\"save-user\"") && own.contains("class=\"reset-user\""));
        assert!(!own.contains("delete-user"), "no delete on one's own row");
        assert!(!own.contains("role=\"alert\""));
        let other = row_html(&html, "alice");
        assert!(other.contains("class=\"danger delete-user\" data-confirm="));
        assert!(other.contains("name=\"role\"") && other.contains("name=\"disabled\""));
        assert!(other.contains(&format!(
            "role=\"alert\" id=\"user-error\">{}",
            JA.last_admin
        )));
    }

    #[test]
    fn the_one_time_password_page_shows_it_once_with_the_note() {
        let c = ctx(Lang::En);
        let html = SecretPage {
            layout: c.layout("users"),
            t: &EN,
            title: EN.reset_title,
            username: "alice",
            password: "abcd-efgh",
            reset: true,
            mfa_removed: true,
        }
        .render()
        .expect("renders");
        assert!(html.contains("id=\"one-time-password\">abcd-efgh<"));
        assert!(html.contains(EN.secret_once) && html.contains(EN.reset_mfa_note));
    }
}
