//! Client authentication (RFC 6749 §2.3.1) and constants declared in the
//! attribute, end to end against the OAuth 2.0 mock: HTTP Basic, credentials
//! in a form or JSON body, a public client, an API key header; constant body
//! fields, query parameters and headers; a session started from an endpoint
//! whose only field is its `#[refresh_token]`.

use refresh_endpoint::providers::oauth2::TokenResponse;
use refresh_endpoint::session::Session;
use refresh_endpoint::tokens::Tokens;
use refresh_endpoint::{Client, ErrorKind, Secret, refresh_endpoint};
use refresh_endpoint_testkit::OAuth2Mock;

/// HTTP Basic client authentication; the grant type is a constant.
#[refresh_endpoint(path = "/oauth/token", auth = basic, envelope = oauth2, body = form,
                   fields(grant_type = "refresh_token"), response = TokenResponse)]
#[derive(Clone, Default)]
struct BasicRefresh {
    #[refresh_token]
    refresh_token: Secret,
}

/// `client_id` and `client_secret` in the form body.
#[refresh_endpoint(path = "/oauth/token", auth = client_body, envelope = oauth2, body = form,
                   fields(grant_type = "refresh_token"), response = TokenResponse)]
#[derive(Clone, Default)]
struct BodyRefresh {
    #[refresh_token]
    refresh_token: Secret,
}

/// Credentials in a JSON body, with constant query and headers.
#[refresh_endpoint(path = "/token", auth = client_body, body = json,
                   fields(grant_type = "refresh_token", version = 2, offline = true),
                   query(realm = "staff", api_version = "2"),
                   header("X-Api-Version" = "2024-01-01"), response = TokenResponse)]
struct JsonRefresh {
    #[refresh_token]
    refresh_token: Secret,
}

/// An API key header and a refresh token in the body.
#[refresh_endpoint(path = "/token", auth = api_key("X-Api-Key"), body = json,
                   response = TokenResponse)]
struct KeyedRefresh {
    #[refresh_token]
    refresh_token: Secret,
}

fn body_of(request: &refresh_endpoint::reqwest::Request) -> String {
    String::from_utf8(request.body().unwrap().as_bytes().unwrap().to_vec()).unwrap()
}

#[tokio::test]
async fn http_basic_client_authentication_refreshes() {
    let oauth = OAuth2Mock::start().await;
    let tokens = oauth.issue_tokens();
    let client = Client::builder(oauth.url())
        .client_credentials(oauth.client_id(), oauth.client_secret())
        .build()
        .unwrap();
    let endpoint = BasicRefresh {
        refresh_token: Secret::new(tokens.refresh_token.as_str()),
    };

    let request = client.build_request(&endpoint, None).unwrap();
    let authorization = request.headers()["authorization"].clone();
    assert!(authorization.to_str().unwrap().starts_with("Basic "));
    assert!(authorization.is_sensitive());
    assert!(!format!("{request:?}").contains(oauth.client_secret()));
    assert!(!body_of(&request).contains("client_secret"));

    let answer = endpoint.send(&client).await.unwrap();
    assert_eq!(answer.token_type, "Bearer");
    assert!(answer.refresh_token.is_some());
}

#[tokio::test]
async fn a_wrong_basic_secret_is_invalid_client_and_not_terminal() {
    let oauth = OAuth2Mock::start().await;
    let tokens = oauth.issue_tokens();
    let client = Client::builder(oauth.url())
        .client_credentials(oauth.client_id(), "wrong")
        .build()
        .unwrap();
    let error = BasicRefresh {
        refresh_token: Secret::new(tokens.refresh_token.as_str()),
    }
    .send(&client)
    .await
    .unwrap_err();
    assert_eq!(error.api().unwrap().code, "invalid_client");
    assert!(!error.is_terminal());
}

#[tokio::test]
async fn basic_needs_client_credentials_on_the_client() {
    let client = Client::new("http://127.0.0.1:1").unwrap();
    let error = client
        .build_request(&BasicRefresh::default(), None)
        .unwrap_err();
    assert!(matches!(error.kind(), ErrorKind::Invalid(_)), "{error:?}");
    assert!(error.to_string().contains("client_credentials"));
}

#[tokio::test]
async fn client_credentials_in_the_form_body_refresh() {
    let oauth = OAuth2Mock::start().await;
    let tokens = oauth.issue_tokens();
    let client = Client::builder(oauth.url())
        .client_credentials(oauth.client_id(), oauth.client_secret())
        .build()
        .unwrap();
    let endpoint = BodyRefresh {
        refresh_token: Secret::new(tokens.refresh_token.as_str()),
    };
    let request = client.build_request(&endpoint, None).unwrap();
    let body = body_of(&request);
    assert!(
        body.starts_with("grant_type=refresh_token&refresh_token="),
        "{body}"
    );
    assert!(
        body.contains("&client_id=testkit-client&client_secret="),
        "{body}"
    );
    assert!(request.headers().get("authorization").is_none());

    let answer = endpoint.send(&client).await.unwrap();
    assert!(answer.refresh_token.is_some());
}

#[tokio::test]
async fn a_public_client_sends_its_client_id_alone() {
    let oauth = OAuth2Mock::builder().public_client("cli").start().await;
    let tokens = oauth.issue_tokens_for("cli", "read").unwrap();
    let client = Client::builder(oauth.url())
        .client_id("cli")
        .build()
        .unwrap();
    let endpoint = BodyRefresh {
        refresh_token: Secret::new(tokens.refresh_token.as_str()),
    };
    let body = body_of(&client.build_request(&endpoint, None).unwrap());
    assert!(body.ends_with("&client_id=cli"), "{body}");
    endpoint.send(&client).await.unwrap();
}

#[tokio::test]
async fn a_session_starts_from_an_endpoint_with_no_placeholder() {
    let oauth = OAuth2Mock::start().await;
    let tokens = oauth.issue_tokens();
    let client = Client::builder(oauth.url())
        .client_credentials(oauth.client_id(), oauth.client_secret())
        .build()
        .unwrap();
    let session = Session::builder(client, BasicRefresh::default())
        .tokens(Tokens::new(
            Secret::new(tokens.access_token.as_str()),
            Secret::new(tokens.refresh_token.as_str()),
        ))
        .build()
        .await
        .unwrap();
    let fresh = session.refresh().await.unwrap();
    assert_ne!(fresh.expose(), tokens.access_token);
    let rotated = session.tokens().unwrap().refresh_token;
    assert_ne!(rotated.expose(), tokens.refresh_token);
    // The rotated token works for the next refresh: the session set it.
    session.refresh().await.unwrap();
}

#[test]
fn credentials_and_constants_go_in_a_json_body_with_query_and_headers() {
    let client = Client::builder("https://auth.example.com")
        .client_credentials("app", "s3cret")
        .build()
        .unwrap();
    let request = client
        .build_request(
            &JsonRefresh {
                refresh_token: Secret::new("rt-1"),
            },
            None,
        )
        .unwrap();
    assert_eq!(
        request.url().as_str(),
        "https://auth.example.com/token?realm=staff&api_version=2"
    );
    assert_eq!(request.headers()["x-api-version"], "2024-01-01");
    assert_eq!(request.headers()["content-type"], "application/json");
    let body: serde_json::Value = serde_json::from_str(&body_of(&request)).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "refresh_token": "rt-1", "grant_type": "refresh_token", "version": 2,
            "offline": true, "client_id": "app", "client_secret": "s3cret",
        })
    );
}

#[test]
fn an_api_key_goes_in_its_header_marked_sensitive() {
    let client = Client::builder("https://api.example.com")
        .secret("key-123")
        .build()
        .unwrap();
    let request = client
        .build_request(
            &KeyedRefresh {
                refresh_token: Secret::new("rt-1"),
            },
            None,
        )
        .unwrap();
    let key = &request.headers()["x-api-key"];
    assert_eq!(key, "key-123");
    assert!(key.is_sensitive());
    assert!(!format!("{request:?}").contains("key-123"));
    assert_eq!(body_of(&request), r#"{"refresh_token":"rt-1"}"#);

    let keyless = Client::new("https://api.example.com").unwrap();
    let error = keyless
        .build_request(
            &KeyedRefresh {
                refresh_token: Secret::new("rt-1"),
            },
            None,
        )
        .unwrap_err();
    assert!(error.to_string().contains("x-api-key"), "{error}");
}

/// RFC 9110 §8.6: a POST without a body says `Content-Length: 0` (some
/// proxies answer 411 otherwise); a GET says nothing.
#[test]
fn a_post_without_a_body_sends_content_length_zero() {
    use refresh_endpoint::providers::atproto::RefreshSession;

    #[refresh_endpoint(path = "/get", method = GET, response = TokenResponse)]
    struct Get;

    let client = Client::new("https://pds.example.com").unwrap();
    let request = client
        .build_request(&RefreshSession, Some(&Secret::new("r")))
        .unwrap();
    assert_eq!(request.headers()["content-length"], "0");
    let request = client.build_request(&Get, None).unwrap();
    assert!(request.headers().get("content-length").is_none());
}

/// The user agent on the wire: the crate's own by default, the builder's
/// when one is given, also through a reqwest client of the user's.
#[tokio::test]
async fn the_user_agent_reaches_the_server() {
    use refresh_endpoint_testkit::hostile::{HostileServer, Reply};
    let server = HostileServer::start(|_| {
        Reply::json(
            200,
            &serde_json::json!({"access_token": "at", "token_type": "Bearer"}),
        )
    })
    .await;
    let endpoint = BodyRefresh {
        refresh_token: Secret::new("rt"),
    };
    let clients = [
        Client::builder(server.url()).client_credentials("id", "secret"),
        Client::builder(server.url())
            .client_credentials("id", "secret")
            .user_agent("my-app/1"),
        Client::builder(server.url())
            .client_credentials("id", "secret")
            .user_agent("my-app/1")
            .http_client(refresh_endpoint::reqwest::Client::new()),
        Client::builder(server.url())
            .client_credentials("id", "secret")
            .http_client(refresh_endpoint::reqwest::Client::new()),
    ];
    for client in clients {
        endpoint.send(&client.build().unwrap()).await.unwrap();
    }
    let agents: Vec<_> = server
        .requests()
        .iter()
        .map(|r| {
            let agents: Vec<_> = r.headers.get_all("user-agent").iter().collect();
            format!("{} {}", agents.len(), agents[0].to_str().unwrap())
        })
        .collect();
    let default = format!("1 {}", refresh_endpoint::DEFAULT_USER_AGENT);
    assert_eq!(agents, [&*default, "1 my-app/1", "1 my-app/1", &*default]);
}
