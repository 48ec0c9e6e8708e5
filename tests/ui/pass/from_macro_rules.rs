//! An endpoint declared by a `macro_rules!` macro: the code placed at the
//! user's field types still resolves `self` and the locals it declares.
#![deny(warnings)]

use refresh_endpoint::providers::cloudreve::Token;
use refresh_endpoint::{Endpoint, Secret, refresh_endpoint};

macro_rules! endpoint {
    ($name:ident { $token:ident: $token_ty:ty, $id:ident: $id_ty:ty, $query:ident: $query_ty:ty }) => {
        #[refresh_endpoint(path = "/sessions/{id}/refresh", auth = body, envelope = code_msg_data,
                           response = Token)]
        struct $name {
            #[refresh_token]
            $token: $token_ty,
            #[path]
            $id: $id_ty,
            #[query]
            $query: $query_ty,
        }
    };
}

endpoint!(Refresh { refresh_token: Secret, id: u32, device: &'static str });

fn main() {
    let mut request = Refresh {
        refresh_token: Secret::new("old"),
        id: 7,
        device: "cli",
    };
    request.set_refresh_token(&Secret::new("new"));
    assert_eq!(request.refresh_token.expose(), "new");
    let mut path = String::new();
    request.write_path(&mut path).unwrap();
    assert_eq!(path, "/sessions/7/refresh");
    let mut query = Vec::new();
    request.write_query(&mut query).unwrap();
    assert_eq!(query, [("device", "cli".to_owned())]);
    let _ = Refresh::send;
}
