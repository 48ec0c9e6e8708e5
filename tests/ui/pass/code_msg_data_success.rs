//! `code_msg_data(success = N)` for providers whose success code is not 0.
#![deny(warnings)]

use refresh_endpoint::envelope::CodeMsgData;
use refresh_endpoint::providers::cloudreve::Token;
use refresh_endpoint::{Endpoint, refresh_endpoint};

#[refresh_endpoint(path = "/refresh", envelope = code_msg_data(success = 200), response = Token)]
struct Refresh;

#[refresh_endpoint(path = "/refresh", envelope = code_msg_data(success = -1), response = Token)]
struct Negative;

fn same<A, B>() -> bool {
    std::any::type_name::<A>() == std::any::type_name::<B>()
}

fn main() {
    assert!(same::<<Refresh as Endpoint>::Envelope, CodeMsgData<200>>());
    assert!(same::<<Negative as Endpoint>::Envelope, CodeMsgData<-1>>());
    let _ = Refresh;
    let _ = Negative;
    let _ = Refresh::send;
    let _ = Negative::send;
}
