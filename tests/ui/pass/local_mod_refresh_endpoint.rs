//! A `mod refresh_endpoint` in scope does not capture the generated paths,
//! which all start with `::refresh_endpoint`.
#![deny(warnings)]

mod api {
    mod refresh_endpoint {}

    use ::refresh_endpoint::providers::cloudreve::Token;
    use ::refresh_endpoint::{Secret, refresh_endpoint as endpoint};

    #[endpoint(path = "/session/refresh", auth = body, envelope = code_msg_data, response = Token)]
    pub struct Refresh {
        #[refresh_token]
        pub refresh_token: Secret,
        #[query]
        pub device: u32,
    }
}

mod other {
    pub mod refresh_endpoint {
        pub struct Error;
        pub struct Client;
        pub mod __private {}
    }
    use self::refresh_endpoint::{Client, Error};

    #[::refresh_endpoint::refresh_endpoint(path = "/token", response = ::refresh_endpoint::providers::oauth2::TokenResponse)]
    pub struct Token;

    pub fn local() -> (Client, Error) {
        (Client, Error)
    }
}

fn main() {
    let request = api::Refresh {
        refresh_token: ::refresh_endpoint::Secret::new("r"),
        device: 7,
    };
    let _ = &request;
    let _ = api::Refresh::send;
    let _ = other::Token::send;
    let _ = other::Token;
    let _ = other::local();
}
