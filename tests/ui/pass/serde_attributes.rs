//! serde attributes on the container and the fields reach the generated derive.
#![deny(warnings)]

use refresh_endpoint::providers::cloudreve::Token;
use refresh_endpoint::{Endpoint, Secret, refresh_endpoint};

#[derive(serde::Serialize)]
struct Device {
    device_id: String,
    platform: &'static str,
}

#[refresh_endpoint(path = "/session/refresh", auth = body, envelope = code_msg_data,
                   body = json, response = Token)]
#[serde(rename_all = "camelCase")]
struct Refresh {
    #[refresh_token]
    #[serde(rename = "token")]
    refresh_token: Secret,
    client_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    #[serde(flatten)]
    device: Device,
    #[query]
    trace: bool,
}

fn main() {
    let request = Refresh {
        refresh_token: Secret::new("r"),
        client_id: "c".into(),
        scope: None,
        device: Device {
            device_id: "d".into(),
            platform: "cli",
        },
        trace: true,
    };
    let body = request.body().unwrap().unwrap();
    assert_eq!(
        String::from_utf8(body.bytes).unwrap(),
        r#"{"token":"r","clientId":"c","device_id":"d","platform":"cli"}"#
    );
    let _ = Refresh::send;
}
