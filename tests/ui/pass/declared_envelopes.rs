//! Every shape the declarative envelope must express, declared in the
//! attribute: RFC 6749, Cloudreve's code_msg_data, XRPC, Clerk, GitHub,
//! Slack, and the shapes of issue 10; with client authentication and
//! constants.
#![deny(warnings)]

use refresh_endpoint::envelope::Declares;
use refresh_endpoint::providers::oauth2::TokenResponse;
use refresh_endpoint::{Secret, refresh_endpoint};

#[refresh_endpoint(path = "/token", auth = basic, body = form, fields(grant_type = "refresh_token"),
                   envelope = json(code = "error", message = "error_description",
                                   terminal = ["invalid_grant"],
                                   retryable = ["temporarily_unavailable", "server_error"]),
                   response = TokenResponse)]
#[derive(Clone, Default)]
struct Rfc6749 {
    #[refresh_token]
    refresh_token: Secret,
}

#[refresh_endpoint(path = "/api/v4/session/token/refresh", auth = body,
                   envelope = json(data = "data", code = "code", message = "msg", trace_id = correlation_id,
                                   success = 0, terminal = [40020, 401], retryable = ["5????"], expired = [401]),
                   response = TokenResponse)]
struct CodeMsgData {
    #[refresh_token]
    refresh_token: Secret,
}

#[refresh_endpoint(path = "/xrpc/com.atproto.server.refreshSession", auth = refresh_bearer,
                   envelope = json(code = "error", message = "message",
                                   terminal = ["ExpiredToken", "InvalidToken", "AccountTakedown", status(401)],
                                   expired = [status(400, "ExpiredToken")]),
                   response = TokenResponse)]
struct Xrpc;

#[refresh_endpoint(path = "/v1/sessions/{id}/refresh", auth = bearer,
                   header("Clerk-API-Version" = "2025-11-10"),
                   envelope = json(code = "/errors/0/code", message = ["/errors/0/long_message", "/errors/0/message"],
                                   trace_id = "clerk_trace_id", keep = [status(401, "clerk_key*")],
                                   terminal = [status(401)]),
                   response = TokenResponse)]
struct Clerk {
    #[path]
    id: String,
    #[refresh_token]
    refresh_token: Secret,
}

#[refresh_endpoint(path = "/login/oauth/access_token", auth = client_body, body = form,
                   fields(grant_type = "refresh_token"), header(Accept = "application/json"),
                   envelope = oauth2(terminal = ["bad_refresh_token"]), response = TokenResponse)]
struct GitHub {
    #[refresh_token]
    refresh_token: Secret,
}

#[refresh_endpoint(path = "/api/oauth.v2.access", auth = client_body, body = form,
                   fields(grant_type = "refresh_token"), response = TokenResponse,
                   envelope = json(ok = "ok", code = "error", terminal = ["invalid_refresh_token"]))]
struct Slack {
    #[refresh_token]
    refresh_token: Secret,
}

/// An API key header; `{"code":400,"error_code":"…","msg":"…"}`.
#[refresh_endpoint(path = "/v2/token", auth = api_key("X-Api-Key"), query(realm = "staff", version = 2),
                   envelope = json(code = "error_code", message = "msg", terminal = ["REFRESH_TOKEN_EXPIRED"]),
                   response = TokenResponse)]
struct ApiKeyProvider {
    #[refresh_token]
    refresh_token: Secret,
}

/// Client credentials in a JSON body; `{"status":400,"message":"Invalid refresh token"}`.
#[refresh_endpoint(path = "/auth/refresh", auth = client_body, fields(offline = true),
                   envelope = json(code = "message", terminal = [status(400, "Invalid refresh token")]),
                   response = TokenResponse)]
struct StatusMessage {
    #[refresh_token]
    refresh_token: Secret,
}

fn name<D: Declares>() -> &'static str {
    D::ENVELOPE.name
}

fn main() {
    assert_eq!(name::<Rfc6749>(), "Rfc6749");
    assert_eq!(name::<GitHub>(), "oauth2");
    let _ = (Rfc6749::default(), Xrpc, Clerk { id: String::new(), refresh_token: Secret::default() });
    let _ = CodeMsgData { refresh_token: Secret::default() };
    let _ = GitHub { refresh_token: Secret::default() };
    let _ = Slack { refresh_token: Secret::default() };
    let _ = ApiKeyProvider { refresh_token: Secret::default() };
    let _ = StatusMessage { refresh_token: Secret::default() };
    let _ = (Rfc6749::send, CodeMsgData::send, Xrpc::send, Clerk::send, GitHub::send);
    let _ = (Slack::send, ApiKeyProvider::send, StatusMessage::send);
}
