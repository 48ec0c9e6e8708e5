//! Raw identifiers name their path placeholders and query keys without `r#`;
//! `#[access_token]` gets its setter.
#![deny(warnings)]

use refresh_endpoint::providers::clerk::SessionRefresh;
use refresh_endpoint::{Endpoint, Secret, refresh_endpoint};

#[refresh_endpoint(path = "/v1/{type}/refresh", auth = bearer, envelope = clerk,
                   response = SessionRefresh)]
struct Refresh {
    #[path]
    r#type: &'static str,
    #[query]
    r#match: bool,
    #[query("expected")]
    r#ref: u8,
    #[access_token]
    expired_token: Secret,
}

fn main() {
    let mut request = Refresh {
        r#type: "sessions",
        r#match: true,
        r#ref: 1,
        expired_token: Secret::new("old"),
    };
    request.set_access_token(&Secret::new("new"));
    let mut path = String::new();
    request.write_path(&mut path).unwrap();
    assert_eq!(path, "/v1/sessions/refresh");
    let mut query = Vec::new();
    request.write_query(&mut query).unwrap();
    assert_eq!(
        query,
        [("match", "true".to_owned()), ("expected", "1".to_owned())]
    );
    assert_eq!(
        String::from_utf8(request.body().unwrap().unwrap().bytes).unwrap(),
        r#"{"expired_token":"new"}"#
    );
    let _ = Refresh::send;
}
