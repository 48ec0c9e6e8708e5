//! Writes the code: `quote!` only. On error, the errors plus the struct
//! itself, so the user sees one error and not a cascade.

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{DeriveInput, LitStr};

use crate::ast::{Field, Input, Role, is_role_attr, unraw};
use crate::attr::{self, Errors};
use crate::valid::{self, Auth, Body, Envelope, Segment, Spec};

pub fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let args = attr::parse_args(args, &mut errors);
    let item: DeriveInput = match syn::parse2(input.clone()) {
        Ok(item) => item,
        Err(error) => {
            let error = syn::Error::new(
                error.span(),
                "#[refresh_endpoint] goes on a struct: `struct Name { field: Type }` or `struct Name;`",
            );
            let mut out = error.to_compile_error();
            out.extend(input);
            out.extend(mention_types(&args, &syn::Generics::default()));
            return out;
        }
    };
    let model = Input::from_syn(&item, &mut errors);
    let spec = valid::check(&args, &model, &mut errors);
    match (errors.into_result(), spec) {
        (Ok(()), Some(spec)) => generate(&model, &spec),
        (result, _) => {
            let mut out = result
                .err()
                .map(|e| e.to_compile_error())
                .unwrap_or_default();
            out.extend(emit_struct(&item, None));
            out.extend(mention_types(&args, &item.generics));
            out.extend(stubs(&args, &item));
            out
        }
    }
}

/// After an error, `send`, `send_blocking` and an `Endpoint` impl that are
/// never run, so that calls to them do not add an error each to the one
/// the attribute reported (thiserror's fallback).
fn stubs(args: &attr::Args, item: &DeriveInput) -> TokenStream {
    let krate = args
        .krate
        .clone()
        .unwrap_or_else(|| syn::parse_quote!(::refresh_endpoint));
    let ident = &item.ident;
    let vis = &item.vis;
    let (impl_generics, ty_generics, where_clause) = item.generics.split_for_impl();
    let response = match &args.response {
        Some(response) => response.to_token_stream(),
        None => quote!(()),
    };
    let token_param = match &args.auth {
        Some(auth) if auth.path.is_ident("refresh_bearer") => {
            quote!(, _refresh_token: &#krate::Secret)
        }
        _ => quote!(),
    };
    // The bodies answer an error rather than panic; they are only emitted
    // next to the attribute's compile error, so they never run.
    let refused = quote! {
        ::core::result::Result::Err(#krate::Error::from(#krate::ErrorKind::Invalid(
            ::std::string::String::from("#[refresh_endpoint] reported an error on this struct"),
        )))
    };
    // Not for a generic struct: the response type's bounds are unknown.
    let generic = !item.generics.params.is_empty();
    let endpoint = args.response.as_ref().filter(|_| !generic).map(|response| {
        quote! {
            #[automatically_derived]
            impl #impl_generics #krate::Endpoint for #ident #ty_generics #where_clause {
                type Response = #response;
                type Auth = #krate::auth::NoAuth;
                type Envelope = #krate::envelope::Plain;
                const NAME: &'static str = "";
                fn write_path(&self, _: &mut ::std::string::String) -> ::core::result::Result<(), #krate::Error> {
                    #refused
                }
            }
        }
    });
    quote! {
        #endpoint

        #[allow(dead_code, clippy::all)]
        impl #impl_generics #ident #ty_generics #where_clause {
            #[doc(hidden)]
            #vis async fn send(
                &self,
                _client: &#krate::Client #token_param
            ) -> ::core::result::Result<#response, #krate::Error> {
                #refused
            }

            #[doc(hidden)]
            #vis fn send_blocking(
                &self,
                _client: &#krate::Client #token_param
            ) -> ::core::result::Result<#response, #krate::Error> {
                #refused
            }
        }
    }
}

/// After an error, the types the attribute names are still used, so that the
/// compiler does not add "unused import" warnings to the one error. A type
/// naming the struct's generic parameters (or `Self`) is left out.
fn mention_types(args: &attr::Args, generics: &syn::Generics) -> TokenStream {
    let mut names: Vec<String> = vec!["Self".to_owned()];
    for param in &generics.params {
        names.push(match param {
            syn::GenericParam::Type(param) => param.ident.to_string(),
            syn::GenericParam::Lifetime(param) => param.lifetime.ident.to_string(),
            syn::GenericParam::Const(param) => param.ident.to_string(),
        });
    }
    let custom = |path: &syn::Path| valid::is_custom(path).then(|| path.to_token_stream());
    let types = [
        args.response.as_ref().map(ToTokens::to_token_stream),
        args.auth.as_ref().and_then(|a| custom(&a.path)),
        args.envelope.as_ref().and_then(|e| custom(&e.path)),
    ];
    types
        .into_iter()
        .flatten()
        .filter(|ty| !names_any(ty.clone(), &names))
        .map(|ty| quote!(const _: ::core::marker::PhantomData<#ty> = ::core::marker::PhantomData;))
        .collect()
}

fn names_any(tokens: TokenStream, names: &[String]) -> bool {
    tokens.into_iter().any(|token| match token {
        TokenTree::Ident(ident) => names.iter().any(|name| ident == name),
        TokenTree::Group(group) => names_any(group.stream(), names),
        _ => false,
    })
}

/// Code about one field, placed at the field's type (and resolved at the
/// call site), so that a type error in it, such as a type that is not
/// `Serialize` or not a `Secret`, is reported at that type.
fn at_type(field: &Field, tokens: TokenStream) -> TokenStream {
    respan(tokens, Span::call_site().located_at(field.ty.span()))
}

fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut token| {
            if let TokenTree::Group(group) = &token {
                token = Group::new(group.delimiter(), respan(group.stream(), span)).into();
            }
            token.set_span(span);
            token
        })
        .collect()
}

/// The struct as the user wrote it, without our field attributes; with the
/// `Serialize` derive when `serde` is `Some` (the request has a body).
fn emit_struct(item: &DeriveInput, serde: Option<&syn::Path>) -> TokenStream {
    let mut item = item.clone();
    let derive = serde.is_some();
    if let syn::Data::Struct(data) = &mut item.data {
        for field in data.fields.iter_mut() {
            let moved_out = field.attrs.iter().any(|attr| {
                attr::parse_role(attr).is_some_and(|(role, _)| {
                    !matches!(
                        role,
                        attr::RoleAttr::RefreshToken | attr::RoleAttr::AccessToken
                    )
                })
            });
            field
                .attrs
                .retain(|attr| !is_role_attr(attr) && (derive || !attr.path().is_ident("serde")));
            if derive && moved_out {
                field.attrs.push(syn::parse_quote!(#[serde(skip)]));
            }
        }
    }
    match serde {
        Some(krate) => {
            let serde_path = LitStr::new(
                &format!("{}::__private::serde", krate.to_token_stream()),
                Span::call_site(),
            );
            item.attrs
                .insert(0, syn::parse_quote!(#[serde(crate = #serde_path)]));
            item.attrs.insert(
                0,
                syn::parse_quote!(#[derive(#krate::__private::serde::Serialize)]),
            );
        }
        None => item.attrs.retain(|attr| !attr.path().is_ident("serde")),
    }
    item.into_token_stream()
}

/// Whether the body's `Serialize` impl is the plain one that
/// `#[derive(Serialize)]` writes for a struct without `#[serde(...)]`
/// attributes and without generic parameters, so that the attribute can write
/// it itself: a derive per struct, with its own expansion, is much of the
/// compile time of a crate with many endpoints. Any `#[serde(...)]` or generic
/// parameter goes through serde's derive.
fn plain_serialize(input: &Input) -> bool {
    let item = input.item;
    let serde = |attrs: &[syn::Attribute]| attrs.iter().any(|a| a.path().is_ident("serde"));
    let syn::Data::Struct(data) = &item.data else {
        return false;
    };
    item.generics.params.is_empty()
        && !serde(&item.attrs)
        && !matches!(data.fields, syn::Fields::Unnamed(_))
        && !data.fields.iter().any(|f| serde(&f.attrs))
}

/// The struct of a valid input, without our field attributes (each field
/// has at most one, its `role_attr`), for [`serialize_impl`].
fn emit_plain_struct(input: &Input) -> TokenStream {
    let mut item = input.item.clone();
    if let (syn::Data::Struct(data), syn::Data::Struct(original)) =
        (&mut item.data, &input.item.data)
    {
        for ((field, original), model) in data
            .fields
            .iter_mut()
            .zip(&original.fields)
            .zip(&input.fields)
        {
            let role = model
                .role_attr
                .and_then(|role| original.attrs.iter().position(|a| std::ptr::eq(a, role)));
            if let Some(at) = role {
                field.attrs.remove(at);
            }
        }
    }
    item.into_token_stream()
}

/// `Serialize` for a struct that [`plain_serialize`] accepts: what
/// `#[derive(Serialize)]` writes for it, the fields that are not sent in
/// the body left out. A field whose type is not `Serialize` is reported at
/// that type.
fn serialize_impl(input: &Input, krate: &syn::Path) -> TokenStream {
    let ident = &input.item.ident;
    let name = ident.to_string();
    let serde = quote!(#krate::__private::serde);
    let body_fields: Vec<&Field> = input.fields.iter().filter(|f| f.role.in_body()).collect();
    let unit = matches!(&input.item.data, syn::Data::Struct(data) if matches!(data.fields, syn::Fields::Unit));
    let body = if unit {
        quote!(#serde::Serializer::serialize_unit_struct(__serializer, #name))
    } else {
        let len = body_fields.len();
        // As `at_type` would place it, written in place rather than
        // re-spanned: one statement per field of every endpoint.
        let fields = body_fields.iter().map(|field| {
            let span = Span::call_site().located_at(field.ty.span());
            let serde = respan(serde.clone(), span);
            let mut member = field.ident.clone();
            member.set_span(span);
            let key = LitStr::new(&unraw(field.ident), span);
            quote_spanned!(span=> #serde::ser::SerializeStruct::serialize_field(&mut __state, #key, &self.#member)?;)
        });
        quote! {
            let mut __state = #serde::Serializer::serialize_struct(__serializer, #name, #len)?;
            #(#fields)*
            #serde::ser::SerializeStruct::end(__state)
        }
    };
    quote! {
        #[automatically_derived]
        impl #serde::Serialize for #ident {
            fn serialize<__S: #serde::Serializer>(
                &self,
                __serializer: __S,
            ) -> ::core::result::Result<__S::Ok, __S::Error> {
                #body
            }
        }
    }
}

fn generate(input: &Input, spec: &Spec) -> TokenStream {
    let krate = &spec.krate;
    let item = input.item;
    let ident = &item.ident;
    let name = ident.to_string();
    let vis = &item.vis;

    let mut generics = item.generics.clone();
    let type_params: Vec<_> = generics.type_params().map(|p| p.ident.clone()).collect();
    if !type_params.is_empty() {
        let response = &spec.response;
        let clause = generics.make_where_clause();
        for param in &type_params {
            clause
                .predicates
                .push(syn::parse_quote!(#param: #krate::__private::serde::Serialize));
        }
        clause
            .predicates
            .push(syn::parse_quote!(#response: #krate::__private::serde::de::DeserializeOwned));
    }
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();

    let response = &spec.response;
    let response_decl = quote_spanned!(response.span()=> type Response = #response;);
    let auth = auth_type(krate, &spec.auth);
    let envelope = envelope_type(krate, &spec.envelope);
    // The trait's defaults (`POST`, no token field) are not repeated: each
    // constant is one more item for the compiler to check.
    let method = &spec.method;
    let method_decl = (method != "POST").then(
        || quote!(const METHOD: #krate::__private::Method = #krate::__private::Method::#method;),
    );
    let carries_decl = input
        .fields
        .iter()
        .any(|f| matches!(f.role, Role::RefreshToken))
        .then(|| {
            quote!(
                const CARRIES_REFRESH_TOKEN: bool = true;
            )
        });

    let path_steps = spec.segments.iter().map(|segment| match segment {
        Segment::Literal(text) => quote!(#krate::__private::push_literal(__path, #text);),
        Segment::Param(param) => {
            match input.fields.iter().find(|f| unraw(f.ident) == *param) {
                Some(field) => {
                    let member = field.ident;
                    at_type(
                        field,
                        quote!(#krate::__private::push_segment(__path, &self.#member, #param)?;),
                    )
                }
                // Reported by `valid`.
                None => TokenStream::new(),
            }
        }
    });

    // A path without parameters is a constant: one function body less per
    // struct for the compiler to check.
    let literal_path = spec
        .segments
        .iter()
        .map(|segment| match segment {
            Segment::Literal(text) => Some(text.as_str()),
            Segment::Param(_) => None,
        })
        .collect::<Option<String>>();
    let write_path = match literal_path {
        Some(path) => quote!(const PATH: &'static str = #path;),
        None => quote! {
            fn write_path(&self, __path: &mut ::std::string::String) -> ::core::result::Result<(), #krate::Error> {
                #(#path_steps)*
                ::core::result::Result::Ok(())
            }
        },
    };

    let query_steps: Vec<_> = fields_with(input, |field| match &field.role {
        Role::Query(name) => {
            let member = field.ident;
            Some(at_type(
                field,
                quote!(#krate::__private::push_query(__query, #name, &self.#member)?;),
            ))
        }
        _ => None,
    });
    let mut query_steps = query_steps;
    for constant in &spec.query {
        let name = constant.name.value();
        let value = const_value(krate, constant);
        query_steps.push(quote!(#krate::__private::push_const_query(__query, #name, #value);));
    }
    let write_query = (!query_steps.is_empty()).then(|| {
        quote! {
            fn write_query(
                &self,
                __query: &mut ::std::vec::Vec<(&'static str, ::std::string::String)>,
            ) -> ::core::result::Result<(), #krate::Error> {
                #(#query_steps)*
                ::core::result::Result::Ok(())
            }
        }
    });

    let header_steps: Vec<_> = fields_with(input, |field| match &field.role {
        Role::Header(Some(name)) => {
            let member = field.ident;
            let name = name.value().to_ascii_lowercase();
            Some(at_type(
                field,
                quote!(#krate::__private::push_header(__headers, #name, &self.#member)?;),
            ))
        }
        _ => None,
    });
    let mut header_steps = header_steps;
    for constant in &spec.header {
        let name = constant.name.value().to_ascii_lowercase();
        let value = const_value(krate, constant);
        header_steps.push(quote!(#krate::__private::push_const_header(__headers, #name, #value)?;));
    }
    let write_headers = (!header_steps.is_empty()).then(|| {
        quote! {
            fn write_headers(
                &self,
                __headers: &mut #krate::__private::HeaderMap,
            ) -> ::core::result::Result<(), #krate::Error> {
                #(#header_steps)*
                ::core::result::Result::Ok(())
            }
        }
    });

    let constants = spec.fields.iter().map(|constant| {
        let name = constant.name.value();
        let value = const_value(krate, constant);
        quote!((#name, #value))
    });
    let constants = quote!(&[#(#constants),*]);
    let body = match (spec.body, spec.fields.is_empty()) {
        (Body::None, _) => None,
        (Body::Json, true) => Some(quote!(#krate::__private::json_body(self))),
        (Body::Form, true) => Some(quote!(#krate::__private::form_body(self))),
        (Body::Json, false) => Some(quote!(#krate::__private::json_body_with(self, #constants))),
        (Body::Form, false) => Some(quote!(#krate::__private::form_body_with(self, #constants))),
    }
    .map(|call| {
        quote! {
            fn body(&self) -> ::core::result::Result<::core::option::Option<#krate::endpoint::Body>, #krate::Error> {
                #call
            }
        }
    });

    let setter = |role: fn(&Role) -> bool, method: &str, bound: &str| {
        input.fields.iter().find(|f| role(&f.role)).map(|field| {
            let member = field.ident;
            let method = format_ident!("{}", method);
            let bound = format_ident!("{}", bound);
            let ty = field.ty;
            let set = at_type(
                field,
                quote!(<#ty as #krate::__private::#bound>::set_token(&mut self.#member, __token);),
            );
            quote! {
                fn #method(&mut self, __token: &#krate::Secret) {
                    #set
                }
            }
        })
    };
    let set_refresh = setter(
        |r| matches!(r, Role::RefreshToken),
        "set_refresh_token",
        "RefreshTokenField",
    );
    let set_access = setter(
        |r| matches!(r, Role::AccessToken),
        "set_access_token",
        "AccessTokenField",
    );

    let (token_param, token_arg, token_doc) = match spec.auth {
        Auth::RefreshBearer => (
            quote!(, refresh_token: &#krate::Secret),
            quote!(::core::option::Option::Some(refresh_token)),
            " The refresh token is sent as `Authorization: Bearer`.",
        ),
        _ => (quote!(), quote!(::core::option::Option::None), ""),
    };
    // `send` returns the runtime's named future, `Sending`, rather than
    // being an `async fn` or returning `impl Future`: an `async fn` per
    // struct is a state machine per struct for rustc to type-check,
    // borrow-check and check auto traits on, and an `impl Future` an opaque
    // type per struct whose hidden type rustc infers and checks against its
    // bounds (most of the compile cost of a crate with many endpoints).
    let send_token_param = match spec.auth {
        Auth::RefreshBearer => quote!(, refresh_token: &'__r #krate::Secret),
        _ => quote!(),
    };
    let token_pass = match spec.auth {
        Auth::RefreshBearer => quote!(, refresh_token),
        _ => quote!(),
    };
    let send_doc = format!(
        "Sends this request to the client's provider and unwraps the response: the future resolves to the endpoint's `Response`.{token_doc}"
    );
    let blocking_doc = format!(
        "Like [`{name}::send`], for code without an async runtime. Do not call it inside one."
    );

    let api_key = match &spec.auth {
        Auth::ApiKey(header) => Some(quote! {
            #[automatically_derived]
            impl #impl_generics #krate::auth::ApiKeyHeader for #ident #ty_generics #where_clause {
                const HEADER: &'static str = #header;
            }
        }),
        _ => None,
    };
    let declared = match &spec.envelope {
        Envelope::Declared { base, options } => {
            let declaration = declared_envelope(krate, &name, *base, options);
            Some(quote! {
                #[automatically_derived]
                impl #impl_generics #krate::envelope::Declares for #ident #ty_generics #where_clause {
                    const ENVELOPE: #krate::envelope::JsonEnvelope = #declaration;
                }
            })
        }
        _ => None,
    };
    // `send_blocking` exists with the runtime's `blocking` feature, which
    // turns on this crate's: deciding here rather than through a
    // `macro_rules!` of the runtime spares the compiler an expansion per
    // struct.
    let blocking = cfg!(feature = "blocking").then(|| {
        quote! {
            impl #impl_generics #ident #ty_generics #where_clause {
                #[doc = #blocking_doc]
                #vis fn send_blocking(
                    &self,
                    client: &#krate::Client #token_param
                ) -> ::core::result::Result<#response, #krate::Error> {
                    #krate::__private::block_on(self.send(client #token_pass))
                }
            }
        }
    });
    let item_tokens = match spec.body {
        Body::None => emit_struct(item, None),
        _ if plain_serialize(input) => {
            let mut out = emit_plain_struct(input);
            out.extend(serialize_impl(input, krate));
            out
        }
        _ => emit_struct(item, Some(krate)),
    };

    quote! {
        #item_tokens

        #api_key
        #declared

        #[automatically_derived]
        impl #impl_generics #krate::Endpoint for #ident #ty_generics #where_clause {
            #response_decl
            type Auth = #auth;
            type Envelope = #envelope;
            const NAME: &'static str = #name;
            #method_decl
            #carries_decl

            #write_path
            #write_query
            #write_headers
            #body
            #set_refresh
            #set_access
        }

        impl #impl_generics #ident #ty_generics #where_clause {
            #[doc = #send_doc]
            #vis fn send<'__r>(
                &'__r self,
                client: &'__r #krate::Client #send_token_param
            ) -> #krate::Sending<'__r, Self> {
                #krate::Client::send(client, self, #token_arg)
            }
        }

        #blocking
    }
}

fn fields_with<'a>(
    input: &'a Input,
    f: impl Fn(&'a Field<'a>) -> Option<TokenStream>,
) -> Vec<TokenStream> {
    input.fields.iter().filter_map(f).collect()
}

fn auth_type(krate: &syn::Path, auth: &Auth) -> TokenStream {
    match auth {
        Auth::RefreshBearer => quote!(#krate::auth::RefreshBearer),
        Auth::InBody => quote!(#krate::auth::InBody),
        Auth::ClientBearer => quote!(#krate::auth::ClientBearer),
        Auth::Basic => quote!(#krate::auth::ClientBasic),
        Auth::ClientBody => quote!(#krate::auth::ClientInBody),
        Auth::ApiKey(_) => quote!(#krate::auth::ApiKey<Self>),
        Auth::None => quote!(#krate::auth::NoAuth),
        Auth::Custom(path) => quote!(#path),
    }
}

fn envelope_type(krate: &syn::Path, envelope: &Envelope) -> TokenStream {
    match envelope {
        Envelope::Plain => quote!(#krate::envelope::Plain),
        Envelope::CodeMsgData(None) => quote!(#krate::envelope::CodeMsgData<0>),
        Envelope::CodeMsgData(Some(success)) => quote!(#krate::envelope::CodeMsgData<#success>),
        Envelope::Xrpc => quote!(#krate::envelope::Xrpc),
        Envelope::Clerk => quote!(#krate::envelope::Clerk),
        Envelope::OAuth2 => quote!(#krate::envelope::OAuth2),
        Envelope::Custom(path) => quote!(#path),
        Envelope::Declared { .. } => quote!(#krate::envelope::Declared<Self>),
    }
}

/// A constant as the runtime's `Const`.
fn const_value(krate: &syn::Path, constant: &attr::Constant) -> TokenStream {
    let text = &constant.value;
    match &constant.lit {
        syn::Lit::Int(_) => quote!(#krate::__private::Const::Num(#text)),
        syn::Lit::Bool(b) => {
            let b = b.value;
            quote!(#krate::__private::Const::Bool(#b))
        }
        _ => quote!(#krate::__private::Const::Str(#text)),
    }
}

/// The `JsonEnvelope` a declared envelope builds, in a const expression.
fn declared_envelope(
    krate: &syn::Path,
    name: &str,
    base: Option<&str>,
    options: &attr::EnvelopeOptions,
) -> TokenStream {
    let mut out = match base {
        Some(base) => {
            let base = format_ident!("{}", base);
            let base = match base.to_string().as_str() {
                "CodeMsgData" => quote!(#krate::envelope::CodeMsgData::<0>::ENVELOPE),
                _ => quote!(#krate::envelope::#base::ENVELOPE),
            };
            quote!(#krate::envelope::JsonEnvelope::new(#base.name).base(&#base))
        }
        None => quote!(#krate::envelope::JsonEnvelope::new(#name)),
    };
    let mut set = |method: &str, value: TokenStream| {
        let method = format_ident!("{}", method);
        out.extend(quote!(.#method(#value)));
    };
    if let Some(at) = &options.data {
        set("data", at.to_token_stream());
    }
    if let Some(at) = &options.code {
        set("code", at.to_token_stream());
    }
    if let Some(list) = &options.message {
        set("message", quote!(&[#(#list),*]));
    }
    if let Some(at) = &options.trace_id {
        set("trace_id", at.to_token_stream());
    }
    match &options.success {
        Some(attr::SuccessArg::Int(code)) => {
            set("success", quote!(#krate::envelope::Success::Int(#code)))
        }
        Some(attr::SuccessArg::Str(code)) => set("success_code", code.to_token_stream()),
        None => {}
    }
    if let Some(at) = &options.ok {
        set("ok_flag", at.to_token_stream());
    }
    if !options.rules.is_empty() {
        let rules = options.rules.iter().map(|rule| {
            let status = match &rule.status {
                Some(status) => {
                    let n: u16 = status.base10_parse().unwrap_or(0);
                    quote!(#n)
                }
                None => quote!(0u16),
            };
            let code = rule.code.clone().unwrap_or_default();
            let outcome = format_ident!("{}", rule.outcome);
            quote!(#krate::envelope::Rule {
                status: #status,
                code: #code,
                outcome: #krate::envelope::Outcome::#outcome,
            })
        });
        set("rules", quote!(&[#(#rules),*]));
    }
    out
}
