//! Parses `#[refresh_endpoint(...)]` and the field attributes.

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::meta::ParseNestedMeta;
use syn::parse::{ParseStream, Parser};
use syn::spanned::Spanned;
use syn::{Attribute, Ident, LitInt, LitStr, Path, Token, Type};

/// The keys the attribute accepts, in the order the docs list them.
pub const KEYS: &str = "path, method, auth, envelope, response, body, fields, query, header, crate";

/// The attribute's arguments, each with the span of the token that set it.
#[derive(Default)]
pub struct Args {
    /// The arguments as written, for errors about a key that is missing.
    pub tokens: TokenStream,
    /// The keys written, even those whose value did not parse.
    pub written: Vec<String>,
    pub path: Option<LitStr>,
    pub method: Option<Ident>,
    pub auth: Option<AuthArg>,
    pub envelope: Option<EnvelopeArg>,
    pub response: Option<Type>,
    pub body: Option<Ident>,
    pub krate: Option<Path>,
    /// `fields(name = value, ...)`: constant body fields.
    pub fields: Option<Vec<Constant>>,
    /// `query(name = value, ...)`: constant query parameters.
    pub query: Option<Vec<Constant>>,
    /// `header("Name" = value, ...)`: constant headers.
    pub header: Option<Vec<Constant>>,
}

/// `auth = name` or `auth = api_key("Header-Name")`.
pub struct AuthArg {
    pub path: Path,
    /// The header name of `api_key("...")`.
    pub header: Option<LitStr>,
}

/// One `name = value` of `fields(...)`, `query(...)` or `header(...)`.
#[derive(Clone)]
pub struct Constant {
    pub name: LitStr,
    /// The value as it is sent.
    pub value: String,
    /// The literal, for JSON: a string, an integer or a bool.
    pub lit: syn::Lit,
}

/// `envelope = name` or `envelope = name(options)`.
pub struct EnvelopeArg {
    pub path: Path,
    /// The options, with the span of their parentheses.
    pub options: Option<(Span, EnvelopeOptions)>,
}

/// The options of a declared envelope: `json(code = "error", terminal = [...])`.
#[derive(Default, Clone)]
pub struct EnvelopeOptions {
    pub data: Option<LitStr>,
    pub code: Option<LitStr>,
    pub message: Option<Vec<LitStr>>,
    pub trace_id: Option<LitStr>,
    pub success: Option<SuccessArg>,
    pub ok: Option<LitStr>,
    pub rules: Vec<RuleArg>,
    /// The option names written, in order.
    pub written: Vec<String>,
}

#[derive(Clone)]
pub enum SuccessArg {
    Int(LitInt),
    Str(LitStr),
}

/// One item of `terminal = [...]`, `retryable`, `keep` or `expired`.
#[derive(Clone)]
pub struct RuleArg {
    pub status: Option<LitInt>,
    pub code: Option<String>,
    /// `Terminal`, `Retryable`, `Keep` or `Expired`.
    pub outcome: &'static str,
}

pub const ENVELOPE_OPTIONS: &[&str] = &[
    "data",
    "code",
    "message",
    "trace_id",
    "success",
    "ok",
    "terminal",
    "retryable",
    "keep",
    "expired",
];
const OPTIONS_HINT: &str = "the options are: data, code, message, trace_id (a field name or a JSON pointer such as \"/errors/0/code\"), success (the code that means success), ok (a field that is true on success), terminal, retryable, keep, expired (lists of codes, `status(N)` or `status(N, \"code\")`)";

fn parse_envelope_options(input: ParseStream) -> syn::Result<(Span, EnvelopeOptions)> {
    let content;
    let parens = syn::parenthesized!(content in input);
    let tokens: TokenStream = content.parse()?;
    let mut options = EnvelopeOptions::default();
    let mut errors = Errors::default();
    let parser = syn::meta::parser(|meta| {
        if let Err(error) = parse_option(&mut options, &meta) {
            errors.push(error);
            skip_value(meta.input)?;
        }
        Ok(())
    });
    parser.parse2(tokens)?;
    errors.into_result()?;
    Ok((parens.span.join(), options))
}

/// A location: a field name or a JSON pointer, as a string or an identifier.
fn location(meta: &ParseNestedMeta) -> syn::Result<LitStr> {
    let input = meta.value()?;
    if input.peek(LitStr) {
        return input.parse();
    }
    let ident: Ident = input.call(syn::ext::IdentExt::parse_any).map_err(|e| {
        with_hint(e, "write a field name or a JSON pointer, such as `code = \"error\"` or `code = \"/errors/0/code\"`")
    })?;
    Ok(LitStr::new(&ident.to_string(), ident.span()))
}

fn parse_option(out: &mut EnvelopeOptions, meta: &ParseNestedMeta) -> syn::Result<()> {
    let key = &meta.path;
    let name = key.get_ident().map(Ident::to_string).unwrap_or_default();
    if out.written.contains(&name)
        && !matches!(name.as_str(), "terminal" | "retryable" | "keep" | "expired")
    {
        return Err(syn::Error::new(
            key.span(),
            format!("duplicate envelope option `{name}`; give each option once"),
        ));
    }
    out.written.push(name.clone());
    match name.as_str() {
        "data" => out.data = Some(location(meta)?),
        "code" => out.code = Some(location(meta)?),
        "trace_id" => out.trace_id = Some(location(meta)?),
        "ok" => out.ok = Some(location(meta)?),
        "message" => {
            let input = meta.value()?;
            if input.peek(syn::token::Bracket) {
                let content;
                syn::bracketed!(content in input);
                let list =
                    content.parse_terminated(<LitStr as syn::parse::Parse>::parse, Token![,])?;
                out.message = Some(list.into_iter().collect());
            } else {
                out.message = Some(vec![input.parse()?]);
            }
        }
        "success" => {
            const HINT: &str =
                "write the code that means success, such as `success = 0` or `success = \"ok\"`";
            let lit: syn::Lit = meta.value()?.parse().map_err(|e| with_hint(e, HINT))?;
            out.success = Some(match lit {
                syn::Lit::Int(int) => {
                    if !matches!(int.suffix(), "" | "i64") || int.base10_parse::<i64>().is_err() {
                        return Err(syn::Error::new(
                            int.span(),
                            format!("the success code is an `i64` without a suffix; {HINT}"),
                        ));
                    }
                    SuccessArg::Int(int)
                }
                syn::Lit::Str(text) => SuccessArg::Str(text),
                other => {
                    return Err(syn::Error::new(
                        other.span(),
                        format!("the success code is an integer or a string; {HINT}"),
                    ));
                }
            });
        }
        "terminal" | "retryable" | "keep" | "expired" => {
            let outcome = match name.as_str() {
                "terminal" => "Terminal",
                "retryable" => "Retryable",
                "keep" => "Keep",
                _ => "Expired",
            };
            let input = meta.value()?;
            let hint =
                format!("write `{name} = [\"code\", 40020, status(401), status(400, \"code\")]`");
            if !input.peek(syn::token::Bracket) {
                return Err(input.error(format!("expected a list in `[...]`; {hint}")));
            }
            let content;
            syn::bracketed!(content in input);
            while !content.is_empty() {
                out.rules.push(parse_rule(&content, outcome, &hint)?);
                if content.is_empty() {
                    break;
                }
                content.parse::<Token![,]>()?;
            }
        }
        _ => {
            let shown = quote::ToTokens::to_token_stream(key).to_string();
            return Err(syn::Error::new(
                key.span(),
                format!(
                    "unknown envelope option `{shown}`{}; {OPTIONS_HINT}",
                    did_you_mean(&shown, ENVELOPE_OPTIONS)
                ),
            ));
        }
    }
    Ok(())
}

fn parse_rule(content: ParseStream, outcome: &'static str, hint: &str) -> syn::Result<RuleArg> {
    if content.peek(LitStr) {
        let code: LitStr = content.parse()?;
        return Ok(RuleArg {
            status: None,
            code: Some(code.value()),
            outcome,
        });
    }
    if content.peek(LitInt) || content.peek(Token![-]) {
        let code: LitInt = content.parse()?;
        return Ok(RuleArg {
            status: None,
            code: Some(code.base10_digits().to_owned()),
            outcome,
        });
    }
    let word: Ident = content.parse().map_err(|e| with_hint(e, hint))?;
    if word != "status" {
        return Err(syn::Error::new(
            word.span(),
            format!(
                "a code is a string: write `\"{word}\"`, or `status(N)` for an HTTP status; {hint}"
            ),
        ));
    }
    let inner;
    syn::parenthesized!(inner in content);
    let status: LitInt = inner.parse().map_err(|e| with_hint(e, hint))?;
    if !status
        .base10_parse::<u16>()
        .is_ok_and(|s| (100..=599).contains(&s))
    {
        return Err(syn::Error::new(
            status.span(),
            "an HTTP status is between 100 and 599",
        ));
    }
    let code = if inner.is_empty() {
        None
    } else {
        inner.parse::<Token![,]>()?;
        let code: syn::Lit = inner.parse().map_err(|e| with_hint(e, hint))?;
        Some(match code {
            syn::Lit::Str(s) => s.value(),
            syn::Lit::Int(i) => i.base10_digits().to_owned(),
            other => {
                return Err(syn::Error::new(
                    other.span(),
                    format!("a code is a string or an integer; {hint}"),
                ));
            }
        })
    };
    if !inner.is_empty() {
        return Err(inner.error(hint));
    }
    Ok(RuleArg {
        status: Some(status),
        code,
        outcome,
    })
}

/// `" (did you mean `x`?)"` when a known word is a small edit away, else `""`.
pub fn did_you_mean(word: &str, known: &[&str]) -> String {
    closest(word, known)
        .map(|k| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default()
}

/// The known word a small edit away from `word`, if any.
pub fn closest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (distance(word, k), *k))
        .filter(|(d, k)| *d > 0 && *d <= (k.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = if ca == *cb {
                previous
            } else {
                1 + previous.min(row[j]).min(row[j + 1])
            };
            previous = current;
        }
    }
    row[b.len()]
}

/// Parses the arguments, gathering every error rather than stopping at the first.
pub fn parse_args(args: TokenStream, errors: &mut Errors) -> Args {
    let mut out = Args {
        tokens: args.clone(),
        ..Args::default()
    };
    let parser = syn::meta::parser(|meta| {
        if let Some(key) = meta.path.get_ident() {
            out.written.push(key.to_string());
        }
        if let Err(error) = parse_key(&mut out, &meta) {
            errors.push(error);
            skip_value(meta.input)?;
        }
        Ok(())
    });
    if let Err(error) = parser.parse2(args) {
        errors.push(error);
    }
    out
}

fn parse_key(out: &mut Args, meta: &ParseNestedMeta) -> syn::Result<()> {
    let key = &meta.path;
    if key.is_ident("path") {
        let hint = "write `path = \"/the/refresh/route\"`";
        set(&mut out.path, value(meta, hint)?, key)
    } else if key.is_ident("method") {
        let hint = "write `method = POST`, or GET, PUT, PATCH, DELETE";
        set(&mut out.method, value(meta, hint)?, key)
    } else if key.is_ident("auth") {
        let path: Path = value(meta, AUTH_HINT)?;
        let header = if meta.input.peek(syn::token::Paren) {
            let content;
            syn::parenthesized!(content in meta.input);
            let hint = |e: syn::Error| with_hint(e, API_KEY_HINT);
            let name: LitStr = content.parse().map_err(hint)?;
            if !content.is_empty() {
                return Err(content.error(format!("one header name only; {API_KEY_HINT}")));
            }
            Some(name)
        } else {
            None
        };
        set(&mut out.auth, AuthArg { path, header }, key)
    } else if key.is_ident("fields") {
        let list = constants(meta, "fields(grant_type = \"refresh_token\")")?;
        set(&mut out.fields, list, key)
    } else if key.is_ident("query") {
        let list = constants(meta, "query(api_version = \"2\")")?;
        set(&mut out.query, list, key)
    } else if key.is_ident("header") {
        let list = constants(meta, "header(\"X-Api-Version\" = \"2\")")?;
        set(&mut out.header, list, key)
    } else if key.is_ident("envelope") {
        let path = value(meta, ENVELOPE_HINT)?;
        let options = if meta.input.peek(syn::token::Paren) {
            Some(parse_envelope_options(meta.input)?)
        } else {
            None
        };
        set(&mut out.envelope, EnvelopeArg { path, options }, key)
    } else if key.is_ident("response") {
        let hint = "write `response = TypeOfTheAnswer` (any `Deserialize` type)";
        set(&mut out.response, value(meta, hint)?, key)
    } else if key.is_ident("body") {
        set(&mut out.body, value(meta, BODY_HINT)?, key)
    } else if key.is_ident("crate") {
        let hint = "write the path the runtime is reached by, such as `crate = ::refresh_endpoint`";
        let input = meta.value()?;
        let path = if input.peek(LitStr) {
            let lit: LitStr = input.parse()?;
            lit.parse()
                .map_err(|_| syn::Error::new(lit.span(), format!("not a path; {hint}")))?
        } else {
            input.parse().map_err(|e| with_hint(e, hint))?
        };
        set(&mut out.krate, path, key)
    } else {
        let shown = quote::ToTokens::to_token_stream(key).to_string();
        let known: Vec<&str> = KEYS.split(", ").collect();
        Err(syn::Error::new(
            key.span(),
            format!(
                "unknown key `{shown}`{}; the keys are: {KEYS}",
                did_you_mean(&shown, &known)
            ),
        ))
    }
}

pub const AUTH_HINT: &str = "write one of refresh_bearer, body, bearer, basic, client_body, api_key(\"Header-Name\"), none, or the path to your own type implementing `refresh_endpoint::auth::Auth`";
pub const API_KEY_HINT: &str = "write `auth = api_key(\"X-Api-Key\")` with the header's name";

/// `(name = value, ...)`: names are identifiers or strings, values string,
/// integer or bool literals.
fn constants(meta: &ParseNestedMeta, example: &str) -> syn::Result<Vec<Constant>> {
    let hint = format!("write constant values as `{example}`");
    if !meta.input.peek(syn::token::Paren) {
        return Err(meta.input.error(format!("expected `(`; {hint}")));
    }
    let content;
    syn::parenthesized!(content in meta.input);
    let result = constant_list(&content, &hint);
    // After an error, the rest is skipped, so that it is reported once.
    content.parse::<TokenStream>()?;
    result
}

fn constant_list(content: ParseStream, hint: &str) -> syn::Result<Vec<Constant>> {
    let mut out: Vec<Constant> = Vec::new();
    while !content.is_empty() {
        let name = if content.peek(LitStr) {
            content.parse::<LitStr>()?
        } else {
            let ident: Ident = content
                .call(syn::ext::IdentExt::parse_any)
                .map_err(|e| with_hint(e, hint))?;
            let text = ident.to_string();
            LitStr::new(text.strip_prefix("r#").unwrap_or(&text), ident.span())
        };
        content
            .parse::<Token![=]>()
            .map_err(|e| with_hint(e, hint))?;
        let lit: syn::Lit = content.parse().map_err(|e| with_hint(e, hint))?;
        let value = match &lit {
            syn::Lit::Str(s) => s.value(),
            syn::Lit::Int(i) => i.base10_digits().to_owned(),
            syn::Lit::Bool(b) => b.value.to_string(),
            other => {
                return Err(syn::Error::new(
                    other.span(),
                    format!("a constant is a string, an integer or a bool; {hint}"),
                ));
            }
        };
        if out.iter().any(|c| c.name.value() == name.value()) {
            return Err(syn::Error::new(
                name.span(),
                format!("`{}` is given twice; give each constant once", name.value()),
            ));
        }
        out.push(Constant { name, value, lit });
        if content.is_empty() {
            break;
        }
        content.parse::<Token![,]>()?;
    }
    Ok(out)
}
pub const ENVELOPE_HINT: &str = "write one of plain, json(...), code_msg_data, xrpc, clerk, oauth2, or the path to your own type implementing `refresh_endpoint::envelope::Envelope`";
pub const BODY_HINT: &str = "write one of json, form, none";

/// The value after `key =`; a parse error says what to write.
fn value<T: syn::parse::Parse>(meta: &ParseNestedMeta, hint: &str) -> syn::Result<T> {
    meta.value()?.parse().map_err(|e| with_hint(e, hint))
}

fn with_hint(error: syn::Error, hint: &str) -> syn::Error {
    syn::Error::new(error.span(), format!("{error}; {hint}"))
}

/// Sets a key once; the only place that reports a duplicate key.
fn set<T>(slot: &mut Option<T>, value: T, key: &Path) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new(
            key.span(),
            format!(
                "duplicate key `{}`; give each key once",
                quote::ToTokens::to_token_stream(key)
            ),
        ));
    }
    *slot = Some(value);
    Ok(())
}

/// Skips the rest of a key's value after an error, up to the next comma.
fn skip_value(input: ParseStream) -> syn::Result<()> {
    while !input.is_empty() && !input.peek(Token![,]) {
        input.parse::<TokenTree>()?;
    }
    Ok(())
}

/// The role a field attribute gives a field.
#[derive(Clone)]
pub enum RoleAttr {
    Path,
    Query(Option<LitStr>),
    /// `None` when the name is missing (an error already).
    Header(Option<LitStr>),
    RefreshToken,
    AccessToken,
}

impl RoleAttr {
    pub fn name(&self) -> &'static str {
        match self {
            RoleAttr::Path => "#[path]",
            RoleAttr::Query(_) => "#[query]",
            RoleAttr::Header(_) => "#[header]",
            RoleAttr::RefreshToken => "#[refresh_token]",
            RoleAttr::AccessToken => "#[access_token]",
        }
    }
}

/// Reads a field's role attribute, if `attr` is one of ours. A malformed
/// one still gives the role it names, with its error, so that the field is
/// not also reported as a body field or as missing from the path.
pub fn parse_role(attr: &Attribute) -> Option<(RoleAttr, Option<syn::Error>)> {
    let path = attr.path();
    let word = |role: RoleAttr| {
        let error = match &attr.meta {
            syn::Meta::Path(_) => None,
            other => Some(syn::Error::new_spanned(
                other,
                format!(
                    "`{}` takes no arguments; write `{}`",
                    role.name(),
                    role.name()
                ),
            )),
        };
        (role, error)
    };
    if path.is_ident("path") {
        Some(word(RoleAttr::Path))
    } else if path.is_ident("refresh_token") {
        Some(word(RoleAttr::RefreshToken))
    } else if path.is_ident("access_token") {
        Some(word(RoleAttr::AccessToken))
    } else if path.is_ident("query") {
        Some(match &attr.meta {
            syn::Meta::Path(_) => (RoleAttr::Query(None), None),
            _ => match attr.parse_args::<LitStr>() {
                Ok(name) => (RoleAttr::Query(Some(name)), None),
                Err(error) => (
                    RoleAttr::Query(None),
                    Some(syn::Error::new(
                        error.span(),
                        "the query key is a string; write `#[query]` for the field's name or `#[query(\"key\")]`",
                    )),
                ),
            },
        })
    } else if path.is_ident("header") {
        const HINT: &str = "write the header's name as a string: `#[header(\"X-Name\")]`";
        Some(match &attr.meta {
            syn::Meta::List(_) => match attr.parse_args::<LitStr>() {
                Ok(name) => (RoleAttr::Header(Some(name)), None),
                Err(error) => (
                    RoleAttr::Header(None),
                    Some(syn::Error::new(error.span(), HINT)),
                ),
            },
            other => (
                RoleAttr::Header(None),
                Some(syn::Error::new_spanned(other, HINT)),
            ),
        })
    } else {
        None
    }
}

/// Every error found, reported together.
#[derive(Default)]
pub struct Errors(Option<syn::Error>);

impl Errors {
    pub fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    pub fn at(&mut self, span: Span, message: impl std::fmt::Display) {
        self.push(syn::Error::new(span, message));
    }

    /// An error over all of `tokens`, such as a whole `#[path]` attribute.
    pub fn spanned(&mut self, tokens: impl quote::ToTokens, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    pub fn into_result(self) -> Result<(), syn::Error> {
        match self.0 {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}
