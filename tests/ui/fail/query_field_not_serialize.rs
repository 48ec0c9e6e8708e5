use refresh_endpoint::providers::cloudreve::Token;
use refresh_endpoint::refresh_endpoint;

struct Device {
    id: u32,
}

#[refresh_endpoint(path = "/session/refresh", response = Token)]
struct Refresh {
    #[query]
    device: Device,
}

fn main() {
    let _ = Refresh { device: Device { id: 1 } }.device.id;
}
