use refresh_endpoint::providers::cloudreve::Token;
use refresh_endpoint::refresh_endpoint;

#[refresh_endpoint(path = "/session/refresh", envelope = code_msg_data(sucess = 0), response = Token)]
struct Refresh;

fn main() {
    let _ = Refresh;
}
