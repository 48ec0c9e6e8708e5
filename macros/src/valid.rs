//! Every rule the attribute checks; each error is spanned on the token at fault.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{GenericParam, Ident, LitInt, LitStr, Path, Type};

use crate::ast::{Input, Role, unraw};
use crate::attr::{
    API_KEY_HINT, AUTH_HINT, Args, AuthArg, BODY_HINT, Constant, ENVELOPE_HINT, Errors,
};
use crate::attr::{EnvelopeOptions, SuccessArg, did_you_mean};

/// What the attribute asks for, checked.
pub struct Spec {
    pub segments: Vec<Segment>,
    pub method: Ident,
    pub auth: Auth,
    pub envelope: Envelope,
    pub response: Type,
    pub body: Body,
    pub krate: Path,
    /// Constant body fields, query parameters and headers.
    pub fields: Vec<Constant>,
    pub query: Vec<Constant>,
    pub header: Vec<Constant>,
}

pub enum Segment {
    Literal(String),
    Param(String),
}

pub enum Auth {
    RefreshBearer,
    InBody,
    ClientBearer,
    Basic,
    ClientBody,
    /// The header's name, lowercase.
    ApiKey(String),
    None,
    Custom(Path),
}

pub enum Envelope {
    Plain,
    CodeMsgData(Option<LitInt>),
    Xrpc,
    Clerk,
    OAuth2,
    Custom(Path),
    /// `json(...)`, or a built-in with options: the base preset's type name.
    Declared {
        base: Option<&'static str>,
        options: EnvelopeOptions,
    },
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Body {
    Json,
    Form,
    None,
}

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];
const ENVELOPES: [&str; 6] = ["plain", "json", "code_msg_data", "xrpc", "clerk", "oauth2"];

/// Checks the arguments against the struct. `None` when any rule failed;
/// every failure is in `errors`.
pub fn check(args: &Args, input: &Input, errors: &mut Errors) -> Option<Spec> {
    check_generics(input, errors);
    check_derives(input, errors);
    check_headers(input, errors);

    if args.tokens.is_empty() {
        errors.at(
            Span::call_site(),
            "#[refresh_endpoint] needs at least `path` and `response`; write `#[refresh_endpoint(path = \"/the/refresh/route\", response = TypeOfTheAnswer)]`",
        );
    }
    let segments = match &args.path {
        Some(path) => {
            let (segments, complete) = parse_path(path, errors);
            check_placeholders(path, &segments, complete, input, errors);
            segments
        }
        None => {
            missing(
                args,
                "path",
                "missing key `path`; write `path = \"/the/refresh/route\"`",
                errors,
            );
            Vec::new()
        }
    };
    if args.response.is_none() {
        missing(
            args,
            "response",
            "missing key `response`; write `response = TypeOfTheAnswer` (any `Deserialize` type)",
            errors,
        );
    }

    let method = match &args.method {
        Some(method) => check_method(method.clone(), errors),
        None => Ident::new("POST", Span::call_site()),
    };
    let auth = match &args.auth {
        Some(arg) => check_auth(arg, errors),
        None => Auth::None,
    };
    let fields = args.fields.clone().unwrap_or_default();
    let query = args.query.clone().unwrap_or_default();
    let header = args.header.clone().unwrap_or_default();
    check_constants(&fields, &query, &header, input, errors);
    let envelope = match &args.envelope {
        Some(arg) => check_envelope(arg.path.clone(), arg.options.clone(), errors),
        None => Envelope::Plain,
    };
    check_auth_fields(args.auth.as_ref().map(|a| &a.path), &auth, input, errors);
    let body = check_body(args.body.as_ref(), &method, input, &fields, errors);

    let krate = args
        .krate
        .clone()
        .unwrap_or_else(|| syn::parse_quote!(::refresh_endpoint));
    Some(Spec {
        segments,
        method,
        auth,
        envelope,
        response: args.response.clone()?,
        body,
        krate,
        fields,
        query,
        header,
    })
}

fn is_header_name(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
}

/// Constants are valid header names and values, and do not collide with a field.
fn check_constants(
    fields: &[Constant],
    query: &[Constant],
    header: &[Constant],
    input: &Input,
    errors: &mut Errors,
) {
    for constant in header {
        let name = constant.name.value();
        if !is_header_name(&name) {
            errors.at(
                constant.name.span(),
                format!("`{name}` is not a valid header name; use letters, digits and `-`, such as \"X-Api-Version\""),
            );
        }
        if constant.value.chars().any(|c| c.is_control()) {
            errors.spanned(
                &constant.lit,
                "a header value cannot hold control characters",
            );
        }
        let taken = input.fields.iter().any(|f| {
            matches!(&f.role, Role::Header(Some(field)) if field.value().eq_ignore_ascii_case(&name))
        });
        if taken {
            errors.at(
                constant.name.span(),
                format!("header `{name}` is also a #[header] field; keep one of them"),
            );
        }
    }
    for constant in query {
        let name = constant.name.value();
        if input
            .fields
            .iter()
            .any(|f| matches!(&f.role, Role::Query(field) if *field == name))
        {
            errors.at(
                constant.name.span(),
                format!("query parameter `{name}` is also a #[query] field; keep one of them"),
            );
        }
    }
    for constant in fields {
        let name = constant.name.value();
        if input
            .fields
            .iter()
            .any(|f| f.role.in_body() && unraw(f.ident) == name)
        {
            errors.at(
                constant.name.span(),
                format!("body field `{name}` is both a constant and a field of the struct; keep one of them"),
            );
        }
    }
}

/// A missing key is reported over the arguments that were given. A bare
/// `#[refresh_endpoint]` has its own error, and a key whose value did not
/// parse is not missing.
fn missing(args: &Args, key: &str, message: &str, errors: &mut Errors) {
    if !args.tokens.is_empty() && !args.written.iter().any(|k| k == key) {
        errors.spanned(&args.tokens, message);
    }
}

fn check_generics(input: &Input, errors: &mut Errors) {
    for param in &input.item.generics.params {
        if let GenericParam::Const(param) = param {
            errors.spanned(
                param,
                "#[refresh_endpoint] does not support const generic parameters; use a type parameter or a field",
            );
        }
    }
}

/// The attribute derives `Serialize` itself; a second derive would clash.
fn check_derives(input: &Input, errors: &mut Errors) {
    for attr in &input.item.attrs {
        if !attr.path().is_ident("derive") {
            continue;
        }
        let _ = attr.parse_nested_meta(|meta| {
            if meta.path.segments.last().is_some_and(|s| s.ident == "Serialize") {
                errors.spanned(
                    &meta.path,
                    "#[refresh_endpoint] derives `Serialize` for the request itself; remove `Serialize` from this derive",
                );
            }
            Ok(())
        });
    }
}

/// Header names are HTTP tokens.
fn check_headers(input: &Input, errors: &mut Errors) {
    for field in &input.fields {
        if let Role::Header(Some(name)) = &field.role {
            let text = name.value();
            if !is_header_name(&text) {
                errors.at(
                    name.span(),
                    format!("`{text}` is not a valid header name; use letters, digits and `-`, such as \"X-Api-Version\""),
                );
            }
        }
    }
}

/// Splits `/a/{b}/c` into literals and placeholders; `false` when a brace
/// is unmatched or a placeholder malformed, so that which fields the path
/// uses is unknown.
fn parse_path(lit: &LitStr, errors: &mut Errors) -> (Vec<Segment>, bool) {
    let text = lit.value();
    let mut segments = Vec::new();
    let mut complete = true;
    if !text.starts_with('/') {
        errors.at(
            lit.span(),
            format!("the path must start with `/`; write `path = \"/{text}\"`"),
        );
    }
    if text.contains('?') || text.contains('#') {
        errors.at(
            lit.span(),
            "the path cannot hold a query or fragment; put query parameters in fields marked #[query]",
        );
    }
    let mut rest = text.as_str();
    while !rest.is_empty() {
        match rest.find(['{', '}']) {
            None => {
                segments.push(Segment::Literal(rest.to_owned()));
                rest = "";
            }
            Some(at) if rest.as_bytes()[at] == b'}' => {
                errors.at(
                    lit.span(),
                    "unmatched `}` in the path; placeholders are written `{name}`",
                );
                return (segments, false);
            }
            Some(at) => {
                if at > 0 {
                    segments.push(Segment::Literal(rest[..at].to_owned()));
                }
                let after = &rest[at + 1..];
                let Some(end) = after
                    .find(['{', '}'])
                    .filter(|&end| after.as_bytes()[end] == b'}')
                else {
                    errors.at(
                        lit.span(),
                        "unclosed `{` in the path; placeholders are written `{name}`",
                    );
                    return (segments, false);
                };
                let name = &after[..end];
                if !is_field_name(name) {
                    errors.at(
                        lit.span(),
                        format!("`{{{name}}}` is not a placeholder; write `{{field_name}}` with the name of a #[path] field"),
                    );
                    complete = false;
                } else {
                    segments.push(Segment::Param(name.to_owned()));
                }
                rest = &after[end + 1..];
            }
        }
    }
    (segments, complete)
}

/// A field's name as a placeholder writes it: `{type}` for `r#type`.
fn is_field_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c == '_' || c.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric())
        && name != "_"
}

fn check_placeholders(
    lit: &LitStr,
    segments: &[Segment],
    complete: bool,
    input: &Input,
    errors: &mut Errors,
) {
    let params: Vec<&str> = segments
        .iter()
        .filter_map(|s| match s {
            Segment::Param(name) => Some(name.as_str()),
            Segment::Literal(_) => None,
        })
        .collect();
    for name in &params {
        let bound = input
            .fields
            .iter()
            .any(|f| matches!(f.role, Role::Path) && unraw(f.ident) == *name);
        if !bound {
            errors.at(
                lit.span(),
                format!("placeholder `{{{name}}}` has no field; add `#[path] {name}: String` to the struct"),
            );
        }
    }
    if !complete {
        return;
    }
    for field in &input.fields {
        if matches!(field.role, Role::Path) && !params.contains(&unraw(field.ident).as_str()) {
            errors.spanned(
                field.role_site(),
                format!(
                    "field `{}` is marked #[path] but the path has no `{{{}}}`; add the placeholder to `path` or remove #[path]",
                    field.ident,
                    unraw(field.ident)
                ),
            );
        }
    }
}

fn check_method(method: Ident, errors: &mut Errors) -> Ident {
    let text = method.to_string();
    if METHODS.contains(&text.as_str()) {
        return method;
    }
    let hint = match METHODS.iter().find(|m| m.eq_ignore_ascii_case(&text)) {
        Some(upper) => format!("write `method = {upper}`"),
        None => format!("the methods are: {}", METHODS.join(", ")),
    };
    errors.at(method.span(), format!("unknown method `{text}`; {hint}"));
    Ident::new("POST", method.span())
}

fn check_auth(arg: &AuthArg, errors: &mut Errors) -> Auth {
    let path = &arg.path;
    let name = single_lowercase_ident(path);
    match (name.as_deref(), &arg.header) {
        (Some("api_key"), Some(header)) => {
            let text = header.value();
            if !is_header_name(&text) {
                errors.at(
                    header.span(),
                    format!("`{text}` is not a valid header name; {API_KEY_HINT}"),
                );
            }
            return Auth::ApiKey(text.to_ascii_lowercase());
        }
        (Some("api_key"), None) => {
            errors.at(
                path.span(),
                format!("`api_key` needs the header's name; {API_KEY_HINT}"),
            );
            return Auth::ApiKey(String::new());
        }
        (_, Some(header)) => {
            errors.at(
                header.span(),
                "only `api_key` takes an argument; remove the parentheses",
            );
        }
        (_, None) => {}
    }
    match name.as_deref() {
        Some("refresh_bearer") => Auth::RefreshBearer,
        Some("body") => Auth::InBody,
        Some("bearer") => Auth::ClientBearer,
        Some("basic") => Auth::Basic,
        Some("client_body") => Auth::ClientBody,
        Some("none") => Auth::None,
        Some(other) => {
            let known = [
                "refresh_bearer",
                "body",
                "bearer",
                "basic",
                "client_body",
                "api_key",
                "none",
            ];
            errors.at(
                path.span(),
                format!(
                    "unknown auth `{other}`{}; {AUTH_HINT}",
                    did_you_mean(other, &known)
                ),
            );
            Auth::None
        }
        None => Auth::Custom(path.clone()),
    }
}

fn check_envelope(
    path: Path,
    options: Option<(Span, EnvelopeOptions)>,
    errors: &mut Errors,
) -> Envelope {
    let name = single_lowercase_ident(&path);
    let Some(name) = name else {
        if let Some((span, _)) = options {
            errors.at(
                span,
                "an envelope of your own takes no options; remove these parentheses, or declare one with `envelope = json(...)`",
            );
        }
        return Envelope::Custom(path);
    };
    let base = match name.as_str() {
        "json" => None,
        "plain" => Some("Plain"),
        "code_msg_data" => Some("CodeMsgData"),
        "xrpc" => Some("Xrpc"),
        "clerk" => Some("Clerk"),
        "oauth2" => Some("OAuth2"),
        other => {
            errors.at(
                path.span(),
                format!(
                    "unknown envelope `{other}`{}; {ENVELOPE_HINT}",
                    did_you_mean(other, &ENVELOPES)
                ),
            );
            return Envelope::Plain;
        }
    };
    let Some((span, options)) = options else {
        return match name.as_str() {
            "json" => Envelope::Declared {
                base: None,
                options: EnvelopeOptions::default(),
            },
            "plain" => Envelope::Plain,
            "code_msg_data" => Envelope::CodeMsgData(None),
            "xrpc" => Envelope::Xrpc,
            "clerk" => Envelope::Clerk,
            _ => Envelope::OAuth2,
        };
    };
    if options.success.is_some() && options.ok.is_some() {
        errors.at(
            span,
            "give `success` (the code that means success) or `ok` (a field that is true on success), not both",
        );
    }
    // `code_msg_data(success = N)` alone keeps its own type.
    if name == "code_msg_data"
        && options.written == ["success"]
        && let Some(SuccessArg::Int(code)) = options.success
    {
        return Envelope::CodeMsgData(Some(code));
    }
    Envelope::Declared { base, options }
}

/// Whether `auth = path` or `envelope = path` names a type of the user's.
pub fn is_custom(path: &Path) -> bool {
    single_lowercase_ident(path).is_none()
}

/// `Some(name)` for a one-word path starting with a lowercase letter (a
/// built-in key); `None` for a type path such as `MyAuth` or `crate::MyAuth`.
fn single_lowercase_ident(path: &Path) -> Option<String> {
    let ident = path.get_ident()?;
    let name = ident.to_string();
    name.starts_with(|c: char| c.is_ascii_lowercase())
        .then_some(name)
}

fn check_auth_fields(auth_key: Option<&Path>, auth: &Auth, input: &Input, errors: &mut Errors) {
    let mut tokens = input
        .fields
        .iter()
        .filter(|f| matches!(f.role, Role::RefreshToken));
    let first = tokens.next();
    for extra in tokens {
        errors.spanned(
            extra.role_site(),
            "only one field can be #[refresh_token]; remove this one",
        );
    }
    let mut access = input
        .fields
        .iter()
        .filter(|f| matches!(f.role, Role::AccessToken));
    access.next();
    for extra in access {
        errors.spanned(
            extra.role_site(),
            "only one field can be #[access_token]; remove this one",
        );
    }
    match (auth, first) {
        (Auth::InBody, None) => {
            let span = auth_key.map_or_else(Span::call_site, |a| a.span());
            errors.at(
                span,
                "`auth = body` needs a field that carries the refresh token; mark it: `#[refresh_token] refresh_token: Secret`",
            );
        }
        (Auth::RefreshBearer, Some(field)) => errors.spanned(
            field.role_site(),
            "`auth = refresh_bearer` sends the refresh token as a bearer header, so no field carries it; remove #[refresh_token], or use `auth = body`",
        ),
        (Auth::None, Some(field)) => match auth_key {
            Some(key) if key.is_ident("none") => errors.spanned(
                field.role_site(),
                "#[refresh_token] puts the refresh token in the body, but `auth` is `none`; write `auth = body`",
            ),
            // An unknown auth, already reported.
            Some(_) => {}
            None => errors.spanned(
                field.role_site(),
                "#[refresh_token] puts the refresh token in the body, which needs `auth = body`; add it to #[refresh_endpoint(...)]",
            ),
        },
        _ => {}
    }
}

fn check_body(
    key: Option<&Ident>,
    method: &Ident,
    input: &Input,
    constants: &[Constant],
    errors: &mut Errors,
) -> Body {
    let has_body_fields = input.fields.iter().any(|f| f.role.in_body()) || !constants.is_empty();
    let body = match key.map(Ident::to_string).as_deref() {
        None if has_body_fields => Body::Json,
        None => Body::None,
        Some("json") => Body::Json,
        Some("form") => Body::Form,
        Some("none") => Body::None,
        Some(other) => {
            errors.at(
                key.map_or_else(Span::call_site, Ident::span),
                format!(
                    "unknown body `{other}`{}; {BODY_HINT}",
                    did_you_mean(other, &["json", "form", "none"])
                ),
            );
            return Body::Json;
        }
    };
    if let Some(first) = constants.first() {
        if body == Body::None {
            errors.at(
                first.name.span(),
                "`body = none` but `fields(...)` gives body fields; use `query(...)` or `header(...)`, or remove `body = none`",
            );
        } else if method == "GET" {
            errors.at(
                first.name.span(),
                "GET requests carry no body, but `fields(...)` gives body fields; use `query(...)`, or `method = POST`",
            );
        }
    }
    for field in input.fields.iter().filter(|f| f.role.in_body()) {
        if body == Body::None {
            errors.at(
                field.ident.span(),
                format!(
                    "`body = none` but `{}` is a body field; mark it #[query], #[header(\"..\")] or #[path], or remove `body = none`",
                    field.ident
                ),
            );
        } else if method == "GET" {
            let message = match field.role {
                Role::RefreshToken | Role::AccessToken => format!(
                    "GET requests carry no body, but `{}` carries a token in the body; use `method = POST` (a token in a URL ends up in logs)",
                    field.ident
                ),
                _ => format!(
                    "GET requests carry no body, but `{}` is a body field; mark it #[query], or use `method = POST`",
                    field.ident
                ),
            };
            errors.at(field.ident.span(), message);
        }
        if body == Body::Form {
            if let Some(flatten) = field.flatten {
                errors.at(
                    flatten,
                    "`body = form` sends flat `key=value` pairs and cannot flatten a struct; list its fields here or use `body = json`",
                );
            } else if is_nested(field.ty) {
                errors.at(
                    field.ty.span(),
                    format!(
                        "`body = form` sends flat `key=value` pairs, but `{}` is nested; use a string, number or bool, or `body = json`",
                        field.ident
                    ),
                );
            }
        }
    }
    body
}

/// Types that cannot be a single form value.
fn is_nested(ty: &Type) -> bool {
    match ty {
        Type::Array(_) | Type::Slice(_) => true,
        Type::Tuple(tuple) => !tuple.elems.is_empty(),
        Type::Reference(reference) => is_nested(&reference.elem),
        Type::Paren(paren) => is_nested(&paren.elem),
        Type::Group(group) => is_nested(&group.elem),
        Type::Path(path) => {
            let Some(last) = path.path.segments.last() else {
                return false;
            };
            let name = last.ident.to_string();
            if name == "Option" {
                return match &last.arguments {
                    syn::PathArguments::AngleBracketed(args) => match args.args.first() {
                        Some(syn::GenericArgument::Type(inner)) => is_nested(inner),
                        _ => false,
                    },
                    _ => false,
                };
            }
            matches!(
                name.as_str(),
                "Vec"
                    | "VecDeque"
                    | "HashMap"
                    | "BTreeMap"
                    | "HashSet"
                    | "BTreeSet"
                    | "Value"
                    | "Map"
            )
        }
        _ => false,
    }
}
