use refresh_endpoint::providers::cloudreve::Token;
use refresh_endpoint::refresh_endpoint;

#[refresh_endpoint(path = "/session/refresh", body = yaml, response = Token)]
struct Refresh<T> {
    client: T,
}

fn main() {
    let _ = Refresh { client: 1 }.client;
}
