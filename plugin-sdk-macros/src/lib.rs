//! The `#[filter]` and `#[transform]` attributes of `dualwrite-plugin-sdk`.
//!
//! Each checks the function's signature (reporting a mistake at the token
//! that is wrong), normalises the function to the SDK's canonical form
//! (`fn(&Row, &Context) -> Result<Outcome, Error>` for a filter, the same with
//! `&mut Row` for a transform) so `?` works in a function that returns a plain
//! `Outcome`, and, when building for `wasm32`, exports it as the component's
//! `filter` or `transform` interface, with its `reads`.
//!
//! The one argument, `reads = ["field", …]` or `reads = a_function` (a
//! `fn(&Context) -> impl IntoIterator<Item = impl Into<String>>`), names the
//! fields the function reads; the host then sends only those. Without it
//! the function gets every field.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{Expr, FnArg, ItemFn, Lit, ReturnType, Type, parse_macro_input};

/// Makes a function `fn(row: &Row[, ctx: &Context]) -> Outcome` (or
/// `-> Result<Outcome, E>`) the plugin's filter.
#[proc_macro_attribute]
pub fn filter(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::Filter, attr, parse_macro_input!(item as ItemFn))
}

/// Makes a function `fn(row: &mut Row[, ctx: &Context]) -> Outcome` (or
/// `-> Result<Outcome, E>`) the plugin's transform.
#[proc_macro_attribute]
pub fn transform(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::Transform, attr, parse_macro_input!(item as ItemFn))
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Filter,
    Transform,
}

impl Kind {
    fn attribute(self) -> &'static str {
        match self {
            Kind::Filter => "#[filter]",
            Kind::Transform => "#[transform]",
        }
    }

    fn row_type(self) -> &'static str {
        match self {
            Kind::Filter => "&Row",
            Kind::Transform => "&mut Row",
        }
    }
}

/// How the function returns.
enum Returns {
    /// `-> Outcome`: the body is rewritten to return `Result<Outcome, Error>`.
    Outcome,
    /// `-> Result<Outcome, E>`: errors are converted into the SDK's `Error`.
    Result,
}

fn expand(kind: Kind, attr: TokenStream, function: ItemFn) -> TokenStream {
    reads(kind, attr.into())
        .and_then(|reads| generate(kind, reads, function))
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// The `reads = …` argument, as a function of the context: `None` when
/// there is none.
fn reads(kind: Kind, attr: TokenStream2) -> syn::Result<Option<TokenStream2>> {
    if attr.is_empty() {
        return Ok(None);
    }
    let wrong = |span: &dyn quote::ToTokens| {
        syn::Error::new_spanned(
            span,
            format!(
                "{} takes one argument, `reads = [\"field\", …]` or `reads = a_function` (a `fn(&Context)` returning the field names)",
                kind.attribute()
            ),
        )
    };
    let argument: syn::MetaNameValue = syn::parse2(attr.clone()).map_err(|_| wrong(&attr))?;
    if !argument.path.is_ident("reads") {
        return Err(wrong(&argument.path));
    }
    let sdk = quote!(::dualwrite_plugin_sdk);
    match &argument.value {
        Expr::Array(array) => {
            for element in &array.elems {
                if !matches!(element, Expr::Lit(lit) if matches!(lit.lit, Lit::Str(_))) {
                    return Err(syn::Error::new_spanned(
                        element,
                        "`reads = [...]` lists field names as string literals",
                    ));
                }
            }
            let names = array.elems.iter();
            Ok(Some(
                quote!(|_: &#sdk::Context| -> ::std::vec::Vec<&'static str> { ::std::vec![#(#names),*] }),
            ))
        }
        Expr::Path(path) => Ok(Some(quote!(#path))),
        other => Err(wrong(other)),
    }
}

fn generate(
    kind: Kind,
    reads: Option<TokenStream2>,
    mut function: ItemFn,
) -> syn::Result<TokenStream2> {
    let returns = check_signature(kind, &function)?;
    let sdk = quote!(::dualwrite_plugin_sdk);
    let name = function.sig.ident.clone();
    let inputs = function.sig.inputs.clone();
    let takes_context = inputs.len() == 2;
    let row_type = match kind {
        Kind::Filter => quote!(&#sdk::Row),
        Kind::Transform => quote!(&mut #sdk::Row),
    };
    let canonical = quote!(::core::result::Result<#sdk::Outcome, #sdk::Error>);
    let (inner_output, call) = {
        let args = if takes_context {
            quote!(row, context)
        } else {
            quote!(row)
        };
        match returns {
            Returns::Outcome => {
                WrapReturns.visit_block_mut(&mut function.block);
                let block = &function.block;
                function.block = syn::parse_quote!({ ::core::result::Result::Ok(#block) });
                (canonical.clone(), quote!(__plugin(#args)))
            }
            Returns::Result => {
                let output = match &function.sig.output {
                    ReturnType::Type(_, ty) => quote!(#ty),
                    ReturnType::Default => quote!(()),
                };
                (
                    output,
                    quote!(__plugin(#args).map_err(::core::convert::Into::into)),
                )
            }
        }
    };
    let body = &function.block;
    let attrs = &function.attrs;
    let vis = &function.vis;
    let export = export(kind, &name, reads.as_ref());
    // The native harness asks which fields the function reads by calling it
    // with a probing context (see `ReadsProbe`); the answer is the same
    // `reads` the component exports.
    let probe = reads.as_ref().map(|reads| {
        quote! {
            if let ::core::option::Option::Some(probe) = context.__reads_probe() {
                probe.answer(::core::option::Option::Some(
                    #sdk::__private::collect_reads(#reads, context),
                ));
                return ::core::result::Result::Ok(#sdk::Outcome::Keep);
            }
        }
    });
    Ok(quote! {
        #(#attrs)*
        #vis fn #name(row: #row_type, context: &#sdk::Context) -> #canonical {
            #[inline(always)]
            fn __plugin(#inputs) -> #inner_output #body
            #probe
            let _ = context;
            #call
        }

        #export
    })
}

fn export(kind: Kind, name: &syn::Ident, reads: Option<&TokenStream2>) -> TokenStream2 {
    let (world, interface, export_macro, runner, output) = match kind {
        Kind::Filter => (
            format_ident!("filter_world"),
            format_ident!("filter"),
            format_ident!("__export_filter_world"),
            format_ident!("run_filter"),
            quote!(::std::vec::Vec<::dualwrite_plugin_sdk::bindings::types::Verdict>),
        ),
        Kind::Transform => (
            format_ident!("transform_world"),
            format_ident!("transform"),
            format_ident!("__export_transform_world"),
            format_ident!("run_transform"),
            quote!(::dualwrite_plugin_sdk::bindings::types::Transformed),
        ),
    };
    let guest = format_ident!("__DualwritePlugin_{}", interface);
    let signature = match kind {
        Kind::Filter => quote!(FilterFn),
        Kind::Transform => quote!(TransformFn),
    };
    let reads = match reads {
        Some(reads) => quote!(::dualwrite_plugin_sdk::__private::reads(#reads, context)),
        None => quote!({
            let _ = context;
            ::core::option::Option::None
        }),
    };
    quote! {
        // Natively the function is only reached from tests: this use keeps
        // it (and what it calls) from being reported as dead code.
        #[cfg(not(target_arch = "wasm32"))]
        const _: ::dualwrite_plugin_sdk::__private::#signature = #name;


        #[cfg(target_arch = "wasm32")]
        const _: () = {
            #[allow(non_camel_case_types)]
            struct #guest;
            impl ::dualwrite_plugin_sdk::bindings::#world::exports::dualwrite::plugin::#interface::Guest for #guest {
                fn reads(
                    context: ::dualwrite_plugin_sdk::bindings::types::Context,
                ) -> ::core::option::Option<::std::vec::Vec<::std::string::String>> {
                    #reads
                }

                fn #interface(
                    context: ::dualwrite_plugin_sdk::bindings::types::Context,
                    batch: ::dualwrite_plugin_sdk::bindings::types::Batch,
                ) -> #output {
                    ::dualwrite_plugin_sdk::__private::#runner(#name, context, batch)
                }
            }
            ::dualwrite_plugin_sdk::bindings::#world::#export_macro!(
                #guest with_types_in ::dualwrite_plugin_sdk::bindings::#world
            );
        };
    }
}

fn check_signature(kind: Kind, function: &ItemFn) -> syn::Result<Returns> {
    let sig = &function.sig;
    let attribute = kind.attribute();
    if let Some(asyncness) = sig.asyncness {
        return Err(syn::Error::new_spanned(
            asyncness,
            format!("a {attribute} function cannot be async: plugins run one batch at a time"),
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(syn::Error::new_spanned(
            &sig.generics,
            format!("a {attribute} function cannot be generic"),
        ));
    }
    if let Some(unsafety) = sig.unsafety {
        return Err(syn::Error::new_spanned(
            unsafety,
            format!("a {attribute} function cannot be unsafe"),
        ));
    }
    if sig.inputs.is_empty() || sig.inputs.len() > 2 {
        return Err(syn::Error::new_spanned(
            &sig.inputs,
            format!(
                "a {attribute} function takes `row: {}` and, optionally, `ctx: &Context`",
                kind.row_type()
            ),
        ));
    }
    let mut inputs = sig.inputs.iter();
    if let Some(row) = inputs.next() {
        check_reference(row, "Row", kind == Kind::Transform, kind, "its first")?;
    }
    if let Some(context) = inputs.next() {
        check_reference(context, "Context", false, kind, "its second")?;
    }
    match &sig.output {
        ReturnType::Default => Err(syn::Error::new_spanned(
            sig,
            format!("a {attribute} function returns `Outcome` or `Result<Outcome, E>`"),
        )),
        ReturnType::Type(_, ty) => match last_segment(ty).as_deref() {
            Some("Outcome") => Ok(Returns::Outcome),
            Some("Result") => Ok(Returns::Result),
            _ => Err(syn::Error::new_spanned(
                ty,
                format!("a {attribute} function returns `Outcome` or `Result<Outcome, E>`"),
            )),
        },
    }
}

fn check_reference(
    arg: &FnArg,
    expected: &str,
    mutable: bool,
    kind: Kind,
    position: &str,
) -> syn::Result<()> {
    let wanted = if mutable {
        format!("&mut {expected}")
    } else {
        format!("&{expected}")
    };
    let error = |span: &dyn quote::ToTokens| {
        syn::Error::new_spanned(
            span,
            format!(
                "a {} function takes `{wanted}` as {position} argument",
                kind.attribute()
            ),
        )
    };
    let FnArg::Typed(typed) = arg else {
        return Err(error(arg));
    };
    match &*typed.ty {
        Type::Reference(reference)
            if reference.mutability.is_some() == mutable
                && last_segment(&reference.elem).as_deref() == Some(expected) =>
        {
            Ok(())
        }
        other => Err(error(other)),
    }
}

fn last_segment(ty: &Type) -> Option<String> {
    match ty {
        Type::Path(path) => path.path.segments.last().map(|s| s.ident.to_string()),
        _ => None,
    }
}

/// Wraps the value of every `return` in `Ok(..)`, leaving closures, async
/// blocks and nested items alone (their `return`s are their own).
struct WrapReturns;

impl VisitMut for WrapReturns {
    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        match expr {
            Expr::Closure(_) | Expr::Async(_) => {}
            Expr::Return(ret) => {
                if let Some(value) = &mut ret.expr {
                    self.visit_expr_mut(value);
                    let span = value.span();
                    let inner = &**value;
                    **value = syn::parse_quote_spanned!(span=> ::core::result::Result::Ok(#inner));
                }
            }
            _ => syn::visit_mut::visit_expr_mut(self, expr),
        }
    }

    fn visit_item_mut(&mut self, _: &mut syn::Item) {}
}
