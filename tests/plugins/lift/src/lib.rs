//! Test plugin for the `lift` fuzz target: its `parse-webhook` skips the generated bindings and
//! hands the host the request body, relocated, as its canonical-ABI return area, so the fuzzer
//! chooses every byte the host lifts (discriminants, pointers, lengths, UTF-8, aliasing).
//!
//! Body layout (all integers little-endian):
//!
//! | bytes | meaning |
//! |---|---|
//! | 1 | `n`, the number of relocations |
//! | 2 × `n` | offsets into the data of 32-bit words to relocate |
//! | rest | the data: the return area (108 bytes for `result<parse-outcome, plugin-error>`) first, then whatever it points to |
//!
//! The data is copied to a static buffer at address `base`; each relocated word gets `base`
//! added, so a pointer is written as an offset into the data. The export returns `base`.
//! Every other export is the generated one (`describe` names the integration type `lift`).

#![allow(clippy::too_many_arguments)]

mod bindings {
    wit_bindgen::generate!({
        path: "../../../wit/v0.1.0",
        world: "plugin",
    });
}

use bindings::exports::nitejar::plugin::{hooks, integration, metadata, skills, tools};
use bindings::nitejar::plugin::types::{HookName, PluginError};

/// Size of `result<parse-outcome, plugin-error>` in the canonical ABI (wasm32).
const RETURN_AREA_BYTES: usize = 108;

/// Where the data lives; 8-aligned so the return area is aligned for any type.
#[repr(C, align(8))]
struct Heap([u8; 1 << 16]);

static mut HEAP: Heap = Heap([0; 1 << 16]);

/// The raw `parse-webhook` export: 16 flat parameters (the instance record's three strings,
/// then the request's method, path, query, headers and body). Only the body is read; the
/// parameters' memory is leaked, which is harmless on a fresh instance per call.
///
/// # Safety
/// Called by the host through the canonical ABI only.
#[unsafe(export_name = "nitejar:plugin/integration@0.1.0#parse-webhook")]
unsafe extern "C" fn raw_parse_webhook(
    _id: *mut u8,
    _id_len: usize,
    _ty: *mut u8,
    _ty_len: usize,
    _config: *mut u8,
    _config_len: usize,
    _method: *mut u8,
    _method_len: usize,
    _path: *mut u8,
    _path_len: usize,
    _query: *mut u8,
    _query_len: usize,
    _headers: *mut u8,
    _headers_len: usize,
    body: *mut u8,
    body_len: usize,
) -> *mut u8 {
    // SAFETY: the host lowered `body_len` bytes at `body`.
    let body = unsafe { std::slice::from_raw_parts(body, body_len) };
    // SAFETY: one call per instance, no threads: nothing else touches HEAP.
    let heap = unsafe { &mut *std::ptr::addr_of_mut!(HEAP) };
    relocate(body, &mut heap.0)
}

/// Copies the data of `body` into `heap`, applies its relocations and returns the data's address.
fn relocate(body: &[u8], heap: &mut [u8]) -> *mut u8 {
    let n = body.first().copied().unwrap_or(0) as usize;
    let table_end = (1 + 2 * n).min(body.len());
    let table = body.get(1..table_end).unwrap_or(&[]);
    let data = body.get(table_end..).unwrap_or(&[]);
    let len = data.len().min(heap.len()).max(RETURN_AREA_BYTES);
    heap[..len].fill(0);
    let copied = data.len().min(heap.len());
    heap[..copied].copy_from_slice(&data[..copied]);
    let base = heap.as_mut_ptr() as usize as u32;
    for entry in table.chunks_exact(2) {
        let at = u16::from_le_bytes([entry[0], entry[1]]) as usize;
        if let Some(word) = heap.get_mut(at..at + 4) {
            let value = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
            word.copy_from_slice(&value.wrapping_add(base).to_le_bytes());
        }
    }
    heap.as_mut_ptr()
}

/// The generated exports for everything but `parse-webhook`.
struct Lift;

impl metadata::Guest for Lift {
    fn describe() -> metadata::Contributions {
        metadata::Contributions {
            integrations: vec!["lift".into()],
            hooks: Vec::<HookName>::new(),
            tools: vec![],
            skills: vec![],
        }
    }
}

fn unsupported(what: &str) -> PluginError {
    PluginError {
        code: "not_implemented".into(),
        message: format!("{what} is not implemented"),
        retryable: false,
    }
}

impl integration::Guest for Lift {
    fn describe() -> Vec<integration::Descriptor> {
        vec![integration::Descriptor {
            integration_type: "lift".into(),
            display_name: "Raw return".into(),
            description: "Returns raw bytes as its parse-webhook result.".into(),
            icon: "bug".into(),
            category: integration::Category::Other,
            response_mode: integration::ResponseMode::Final,
            config_schema: r#"{"type":"object"}"#.into(),
            ui_schema: None,
            sensitive_fields: vec![],
        }]
    }
    fn validate_config(_integration_type: String, _config: String) -> Result<(), Vec<String>> {
        Ok(())
    }
    fn parse_webhook(
        _instance: integration::Instance,
        _request: integration::WebhookRequest,
    ) -> Result<integration::ParseOutcome, PluginError> {
        unreachable!("parse-webhook is the raw export above")
    }
    fn post_response(
        _instance: integration::Instance,
        _work_item_id: String,
        _content: String,
        _response_context: Option<String>,
        _options: integration::PostOptions,
    ) -> Result<integration::PostResult, PluginError> {
        Err(unsupported("post-response"))
    }
    fn acknowledge_receipt(
        _instance: integration::Instance,
        _response_context: Option<String>,
    ) -> Result<(), PluginError> {
        Ok(())
    }
    fn test_connection(
        _integration_type: String,
        _config: String,
    ) -> Result<integration::ConnectionStatus, PluginError> {
        Ok(integration::ConnectionStatus {
            ok: true,
            detail: Some("not checked".into()),
        })
    }
}

impl hooks::Guest for Lift {
    fn work_item_pre_create(
        _ctx: hooks::HookContext,
        _event: hooks::WorkItemPreCreateEvent,
    ) -> Result<hooks::WorkItemPreCreateDecision, PluginError> {
        Err(unsupported("hooks"))
    }
    fn work_item_post_create(
        _ctx: hooks::HookContext,
        _event: hooks::WorkItemPostCreateEvent,
    ) -> Result<(), PluginError> {
        Err(unsupported("hooks"))
    }
    fn run_pre_prompt(
        _ctx: hooks::HookContext,
        _event: hooks::RunPrePromptEvent,
    ) -> Result<hooks::RunPrePromptPatch, PluginError> {
        Err(unsupported("hooks"))
    }
    fn model_pre_call(
        _ctx: hooks::HookContext,
        _event: hooks::ModelPreCallEvent,
    ) -> Result<hooks::ModelPreCallDecision, PluginError> {
        Err(unsupported("hooks"))
    }
    fn model_post_call(
        _ctx: hooks::HookContext,
        _event: hooks::ModelPostCallEvent,
    ) -> Result<(), PluginError> {
        Err(unsupported("hooks"))
    }
    fn tool_pre_exec(
        _ctx: hooks::HookContext,
        _event: hooks::ToolPreExecEvent,
    ) -> Result<hooks::ToolPreExecDecision, PluginError> {
        Err(unsupported("hooks"))
    }
    fn tool_post_exec(
        _ctx: hooks::HookContext,
        _event: hooks::ToolPostExecEvent,
    ) -> Result<hooks::ToolPostExecPatch, PluginError> {
        Err(unsupported("hooks"))
    }
    fn response_pre_deliver(
        _ctx: hooks::HookContext,
        _event: hooks::ResponsePreDeliverEvent,
    ) -> Result<hooks::ResponsePreDeliverDecision, PluginError> {
        Err(unsupported("hooks"))
    }
    fn response_post_deliver(
        _ctx: hooks::HookContext,
        _event: hooks::ResponsePostDeliverEvent,
    ) -> Result<(), PluginError> {
        Err(unsupported("hooks"))
    }
}

impl tools::Guest for Lift {
    fn list_tools() -> Vec<tools::ToolDefinition> {
        vec![]
    }
    fn prompt_section(_ctx: tools::ToolContext) -> Option<String> {
        None
    }
    fn call_tool(
        _ctx: tools::ToolContext,
        _name: String,
        _input: String,
    ) -> Result<tools::ToolOutput, PluginError> {
        Err(unsupported("tools"))
    }
}

impl skills::Guest for Lift {
    fn list_skills() -> Vec<skills::Skill> {
        vec![]
    }
}

// The generated exports of every interface but `integration`, whose functions other than
// `parse-webhook` are forwarded by hand below.
bindings::exports::nitejar::plugin::metadata::__export_nitejar_plugin_metadata_0_1_0_cabi!(Lift with_types_in bindings::exports::nitejar::plugin::metadata);
bindings::exports::nitejar::plugin::hooks::__export_nitejar_plugin_hooks_0_1_0_cabi!(Lift with_types_in bindings::exports::nitejar::plugin::hooks);
bindings::exports::nitejar::plugin::tools::__export_nitejar_plugin_tools_0_1_0_cabi!(Lift with_types_in bindings::exports::nitejar::plugin::tools);
bindings::exports::nitejar::plugin::skills::__export_nitejar_plugin_skills_0_1_0_cabi!(Lift with_types_in bindings::exports::nitejar::plugin::skills);

/// Forwards a generated integration export (and its post-return) under its canonical name.
macro_rules! forward {
    ($name:literal, $export:ident, $post:ident, ($($arg:ident: $ty:ty),*)) => {
        const _: () = {
            #[unsafe(export_name = concat!("nitejar:plugin/integration@0.1.0#", $name))]
            unsafe extern "C" fn export($($arg: $ty),*) -> *mut u8 {
                unsafe { integration::$export::<Lift>($($arg),*) }
            }
            #[unsafe(export_name = concat!("cabi_post_nitejar:plugin/integration@0.1.0#", $name))]
            unsafe extern "C" fn post(ret: *mut u8) {
                unsafe { integration::$post::<Lift>(ret) }
            }
        };
    };
}

forward!(
    "describe",
    _export_describe_cabi,
    __post_return_describe,
    ()
);
forward!(
    "validate-config",
    _export_validate_config_cabi,
    __post_return_validate_config,
    (a: *mut u8, b: usize, c: *mut u8, d: usize)
);
forward!(
    "post-response",
    _export_post_response_cabi,
    __post_return_post_response,
    (a: *mut u8)
);
forward!(
    "test-connection",
    _export_test_connection_cabi,
    __post_return_test_connection,
    (a: *mut u8, b: usize, c: *mut u8, d: usize)
);

/// `acknowledge-receipt` returns `result<_, plugin-error>`: its post-return frees the error.
#[unsafe(export_name = "nitejar:plugin/integration@0.1.0#acknowledge-receipt")]
unsafe extern "C" fn acknowledge_receipt(
    a: *mut u8,
    b: usize,
    c: *mut u8,
    d: usize,
    e: *mut u8,
    f: usize,
    g: i32,
    h: *mut u8,
    i: usize,
) -> *mut u8 {
    unsafe { integration::_export_acknowledge_receipt_cabi::<Lift>(a, b, c, d, e, f, g, h, i) }
}
