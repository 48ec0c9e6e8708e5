//! `auth` and `envelope` take the path of a type of your own.
#![deny(warnings)]

use refresh_endpoint::auth::{Auth, Credentials};
use refresh_endpoint::envelope::{Envelope, RawResponse};
use refresh_endpoint::{Endpoint, Error, refresh_endpoint};
use serde::de::DeserializeOwned;

mod schemes {
    pub struct ApiKey;
}

impl Auth for schemes::ApiKey {
    fn apply(
        request: &mut refresh_endpoint::reqwest::Request,
        credentials: Credentials<'_>,
    ) -> Result<(), Error> {
        let _ = (request, credentials);
        Ok(())
    }
}

struct OkResult;

impl Envelope for OkResult {
    fn unwrap<T: DeserializeOwned>(response: &RawResponse) -> Result<T, Error> {
        response.json()
    }
}

#[derive(serde::Deserialize)]
struct Session {
    token: String,
}

#[refresh_endpoint(path = "/refresh", auth = schemes::ApiKey, envelope = OkResult,
                   response = Session)]
struct Refresh;

#[refresh_endpoint(path = "/refresh", auth = crate::schemes::ApiKey, envelope = self::OkResult,
                   response = Session)]
struct Absolute;

fn main() {
    let _ = Refresh;
    let _ = Refresh::send;
    let _ = <Refresh as Endpoint>::Auth::SENDS_SECRET;
    let _ = Absolute::send;
    let _ = Absolute;
    let _ = |s: Session| s.token;
}
