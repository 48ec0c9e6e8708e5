//! The requests the attribute builds: URL, method, headers and body, byte for byte.

use refresh_endpoint::providers::clerk::{Format, SessionRefresh};
use refresh_endpoint::providers::cloudreve::Token;
use refresh_endpoint::providers::oauth2::TokenResponse;
use refresh_endpoint::{Client, Endpoint, Secret, refresh_endpoint};

#[refresh_endpoint(path = "/api/v4/session/token/refresh", auth = body,
                   envelope = code_msg_data, response = Token)]
struct CloudreveRefresh {
    #[refresh_token]
    refresh_token: Secret,
}

#[refresh_endpoint(path = "/v1/sessions/{session_id}/refresh", auth = bearer,
                   envelope = clerk, response = SessionRefresh)]
struct ClerkRefresh {
    #[path]
    session_id: String,
    #[query]
    suffixed_cookies: Option<bool>,
    #[header("Clerk-API-Version")]
    api_version: &'static str,
    #[access_token]
    expired_token: Secret,
    #[refresh_token]
    refresh_token: Secret,
    request_origin: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<Format>,
}

#[refresh_endpoint(path = "/oauth/token", auth = body, envelope = oauth2,
                   body = form, response = TokenResponse)]
struct OAuthRefresh {
    grant_type: &'static str,
    #[refresh_token]
    refresh_token: Secret,
    client_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
}

fn body_text(request: &refresh_endpoint::reqwest::Request) -> String {
    String::from_utf8(
        request
            .body()
            .and_then(|b| b.as_bytes())
            .unwrap_or_default()
            .to_vec(),
    )
    .unwrap()
}

#[test]
fn cloudreve_sends_the_refresh_token_in_a_json_body() {
    let client = Client::new("https://cloud.example.com/").unwrap();
    let endpoint = CloudreveRefresh {
        refresh_token: Secret::new("r.t.1"),
    };
    let request = client.build_request(&endpoint, None).unwrap();
    assert_eq!(request.method(), "POST");
    assert_eq!(
        request.url().as_str(),
        "https://cloud.example.com/api/v4/session/token/refresh"
    );
    assert_eq!(request.headers()["content-type"], "application/json");
    assert!(request.headers().get("authorization").is_none());
    assert_eq!(body_text(&request), r#"{"refresh_token":"r.t.1"}"#);
    const { assert!(CloudreveRefresh::CARRIES_REFRESH_TOKEN) };
}

#[test]
fn the_path_goes_after_the_base_urls_own_path() {
    let endpoint = CloudreveRefresh {
        refresh_token: Secret::new("r"),
    };
    let url = |base: &str| {
        let client = Client::new(base).unwrap();
        client
            .build_request(&endpoint, None)
            .unwrap()
            .url()
            .to_string()
    };
    let path = "/api/v4/session/token/refresh";
    for base in [
        "https://h.example",
        "https://h.example/",
        "HTTPS://H.example:443",
    ] {
        assert_eq!(url(base), format!("https://h.example{path}"), "{base}");
    }
    for base in ["https://h.example/cloud", "https://h.example/cloud/"] {
        assert_eq!(
            url(base),
            format!("https://h.example/cloud{path}"),
            "{base}"
        );
    }
    assert_eq!(
        url("https://h.example:8443/a%20b/"),
        format!("https://h.example:8443/a%20b{path}")
    );
    // A query of the base URL stays a query.
    assert_eq!(
        url("https://h.example/cloud?tenant=7"),
        format!("https://h.example/cloud{path}?tenant=7")
    );
    // A path parameter cannot add a query, a fragment or a segment.
    let request = clerk_client("https://api.clerk.com/base/")
        .build_request(&clerk_refresh("a?b=1#c/../d", None), None)
        .unwrap();
    assert_eq!(
        request.url().as_str(),
        "https://api.clerk.com/base/v1/sessions/a%3Fb%3D1%23c%2F..%2Fd/refresh"
    );
    assert_eq!(request.url().query(), None);
    assert_eq!(request.url().fragment(), None);
}

fn clerk_client(base_url: &str) -> Client {
    Client::builder(base_url)
        .secret("sk_test_abc")
        .build()
        .unwrap()
}

fn clerk_refresh(session_id: &str, suffixed_cookies: Option<bool>) -> ClerkRefresh {
    ClerkRefresh {
        session_id: session_id.into(),
        suffixed_cookies,
        api_version: "2021-02-05",
        expired_token: Secret::new("old.jwt.x"),
        refresh_token: Secret::new("refresh-1"),
        request_origin: "https://app.example.com".into(),
        format: None,
    }
}

#[test]
fn clerk_path_query_header_and_body() {
    let request = clerk_client("https://api.clerk.com")
        .build_request(&clerk_refresh("sess/1 2", Some(false)), None)
        .unwrap();
    assert_eq!(
        request.url().as_str(),
        "https://api.clerk.com/v1/sessions/sess%2F1%202/refresh?suffixed_cookies=false"
    );
    assert_eq!(request.headers()["authorization"], "Bearer sk_test_abc");
    assert_eq!(request.headers()["clerk-api-version"], "2021-02-05");
    assert_eq!(
        body_text(&request),
        r#"{"expired_token":"old.jwt.x","refresh_token":"refresh-1","request_origin":"https://app.example.com"}"#
    );
}

#[test]
fn oauth2_form_body_and_token_setter() {
    let client = Client::new("https://auth.example.com").unwrap();
    let mut endpoint = OAuthRefresh {
        grant_type: "refresh_token",
        refresh_token: Secret::new("old"),
        client_id: "cli ent".into(),
        scope: None,
    };
    endpoint.set_refresh_token(&Secret::new("new/+="));
    let request = client.build_request(&endpoint, None).unwrap();
    assert_eq!(
        request.headers()["content-type"],
        "application/x-www-form-urlencoded"
    );
    assert_eq!(
        body_text(&request),
        "grant_type=refresh_token&refresh_token=new%2F%2B%3D&client_id=cli+ent"
    );
}

#[test]
fn insecure_http_is_refused_for_secrets_but_loopback_is_fine() {
    let remote = Client::new("http://cloud.example.com").unwrap();
    let endpoint = CloudreveRefresh {
        refresh_token: Secret::new("r"),
    };
    let error = remote.build_request(&endpoint, None).unwrap_err();
    assert!(
        matches!(
            error.kind(),
            refresh_endpoint::ErrorKind::InsecureUrl { .. }
        ),
        "{error}"
    );
    let opted_in = Client::builder("http://cloud.example.com")
        .allow_insecure_http(true)
        .build()
        .unwrap();
    assert!(opted_in.build_request(&endpoint, None).is_ok());
    for loopback in [
        "http://127.0.0.1:8080",
        "http://localhost:1",
        "http://[::1]:9",
    ] {
        assert!(
            Client::new(loopback)
                .unwrap()
                .build_request(&endpoint, None)
                .is_ok(),
            "{loopback}"
        );
    }
}

#[test]
fn an_empty_path_parameter_is_an_error() {
    let client = Client::builder("https://api.clerk.com")
        .secret("sk")
        .build()
        .unwrap();
    let endpoint = ClerkRefresh {
        session_id: String::new(),
        suffixed_cookies: None,
        api_version: "2021-02-05",
        expired_token: Secret::new("a"),
        refresh_token: Secret::new("b"),
        request_origin: String::new(),
        format: None,
    };
    let error = client.build_request(&endpoint, None).unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid request: path parameter `session_id` is empty"
    );
}
