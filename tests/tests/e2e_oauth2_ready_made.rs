//! `providers::oauth2::Refresh`: the ready-made RFC 6749 refresh, used by a
//! `Session` directly with each client authentication, against the OAuth 2.0
//! mock over real HTTP.

use refresh_endpoint::providers::oauth2::Refresh;
use refresh_endpoint::session::{RefreshEndpoint, Session, Status};
use refresh_endpoint::tokens::Tokens;
use refresh_endpoint::{Client, ClientBuilder, Secret};
use refresh_endpoint_testkit::{OAuth2Mock, OAuth2Tokens, jwt};

async fn session<E: RefreshEndpoint>(
    client: ClientBuilder,
    endpoint: E,
    tokens: &OAuth2Tokens,
) -> Session<E> {
    Session::builder(client.build().unwrap(), endpoint)
        .tokens(Tokens::new(
            Secret::new(tokens.access_token.as_str()),
            Secret::new(tokens.refresh_token.as_str()),
        ))
        .build()
        .await
        .unwrap()
}

/// Two refreshes in a row: the second only works if the session sent the
/// rotated refresh token of the first.
async fn refreshes_twice<E: RefreshEndpoint>(session: &Session<E>, issued: &OAuth2Tokens) {
    let first = session.refresh().await.unwrap();
    assert_ne!(first.expose(), issued.access_token);
    assert_ne!(
        session.tokens().unwrap().refresh_token.expose(),
        issued.refresh_token
    );
    let second = session.refresh().await.unwrap();
    assert_ne!(second, first);
}

#[tokio::test]
async fn http_basic() {
    let oauth = OAuth2Mock::start().await;
    let issued = oauth.issue_tokens();
    let client = Client::builder(oauth.token_url())
        .client_credentials(oauth.client_id(), oauth.client_secret());
    let session = session(client, Refresh::basic(), &issued).await;
    refreshes_twice(&session, &issued).await;
}

#[tokio::test]
async fn credentials_in_the_body_with_a_path_and_a_narrower_scope() {
    let oauth = OAuth2Mock::builder().scope("read write").start().await;
    let issued = oauth.issue_tokens();
    let client =
        Client::builder(oauth.url()).client_credentials(oauth.client_id(), oauth.client_secret());
    let endpoint = Refresh::client_body().path("/oauth/token").scope("read");
    let session = session(client, endpoint, &issued).await;
    let token = session.refresh().await.unwrap();
    let claims = jwt::verify(oauth.jwt_secret(), token.expose()).unwrap();
    assert_eq!(claims["scope"], "read");
    refreshes_twice(&session, &issued).await;
}

#[tokio::test]
async fn a_public_client_with_its_id_alone() {
    let oauth = OAuth2Mock::builder().public_client("cli").start().await;
    let issued = oauth.issue_tokens_for("cli", "read").unwrap();
    let client = Client::builder(oauth.token_url()).client_id("cli");
    let session = session(client, Refresh::client_body(), &issued).await;
    refreshes_twice(&session, &issued).await;
}

#[tokio::test]
async fn no_client_authentication_is_refused_by_a_server_that_wants_it() {
    let oauth = OAuth2Mock::start().await;
    let issued = oauth.issue_tokens();
    let client = Client::builder(oauth.token_url());
    let session = session(client, Refresh::no_client_auth(), &issued).await;
    let error = session.refresh().await.unwrap_err();
    assert_eq!(error.api().unwrap().code, "invalid_client");
    assert!(!error.is_terminal());
    assert_eq!(session.status(), Status::Active);
}

#[tokio::test]
async fn a_revoked_refresh_token_signs_the_session_out() {
    let oauth = OAuth2Mock::start().await;
    let issued = oauth.issue_tokens();
    assert!(oauth.revoke(&issued.refresh_token));
    let client = Client::builder(oauth.token_url())
        .client_credentials(oauth.client_id(), oauth.client_secret());
    let session = session(client, Refresh::basic(), &issued).await;
    let error = session.refresh().await.unwrap_err();
    assert!(error.is_terminal(), "{error:?}");
    assert!(matches!(session.status(), Status::SignedOut(Some(_))));
}
