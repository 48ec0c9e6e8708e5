//! Generated code names std and the runtime by absolute paths, so local items
//! that shadow prelude names change nothing.
#![deny(warnings)]

use refresh_endpoint::providers::cloudreve::Token;
use refresh_endpoint::{Secret, refresh_endpoint};

type Result<T> = ::std::result::Result<T, ()>;
type Option = ();
struct String;
struct Vec;
struct Box;
struct Ok;
struct Some;
struct None;
trait Serialize {}
trait Endpoint {}
trait Default {}
trait Clone {}
trait Send {}
trait Sync {}
trait Sized {}
trait Into {}
trait Future {}
mod core {}
mod std {}
mod serde {}
macro_rules! format {
    () => {};
}
macro_rules! vec {
    () => {};
}

#[refresh_endpoint(path = "/sessions/{session}/refresh", auth = body, envelope = code_msg_data,
                   response = Token)]
struct Refresh {
    #[path]
    session: u64,
    #[query]
    device: &'static str,
    #[header("X-Api-Version")]
    version: u8,
    #[refresh_token]
    refresh_token: Secret,
}

#[refresh_endpoint(path = "/r", auth = refresh_bearer, response = Token)]
struct Bare;

#[refresh_endpoint(path = "/form", body = form, response = Token)]
struct Form {
    client_id: u32,
}

fn shadows(_: Result<Option>, _: (String, Vec, Box, Ok, Some, None)) {}

fn traits(
    _: &[&dyn Serialize],
    _: &[&dyn Endpoint],
    _: &[&dyn Default],
    _: &[&dyn Clone],
    _: &[&dyn Send],
    _: &[&dyn Sync],
    _: &[&dyn Sized],
    _: &[&dyn Into],
    _: &[&dyn Future],
) {
}

fn main() {
    format!();
    vec!();
    shadows(::std::result::Result::Ok(()), (String, Vec, Box, Ok, Some, None));
    traits(&[], &[], &[], &[], &[], &[], &[], &[], &[]);
    let request = Refresh {
        session: 1,
        device: "cli",
        version: 2,
        refresh_token: Secret::new("r"),
    };
    let _ = &request;
    let _ = Refresh::send;
    let _ = Refresh::send_blocking;
    let _ = Bare::send;
    let _ = Bare;
    let _ = Form { client_id: 1 };
    let _ = Form::send;
}
