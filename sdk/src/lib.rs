//! The Rust SDK for Nitejar plugins.
//!
//! A plugin is a WebAssembly component built with `cargo build --target wasm32-wasip2` (or
//! `cargo component build`). It implements [`Plugin`] plus any of [`Integration`], [`Hooks`],
//! [`Tools`] and [`Skills`], and names its type with [`export_plugin!`]:
//!
//! ```ignore
//! use nitejar_plugin_sdk::{export_plugin, Contributions, Hooks, Plugin, HookName};
//! use nitejar_plugin_sdk::hooks::*;
//!
//! struct Redactor;
//! impl Plugin for Redactor {
//!     fn contributions() -> Contributions {
//!         Contributions::hooks(&[HookName::ResponsePreDeliver])
//!     }
//! }
//! impl Hooks for Redactor {
//!     fn response_pre_deliver(_ctx: HookContext, ev: ResponsePreDeliverEvent)
//!         -> Result<ResponsePreDeliverDecision, PluginError> {
//!         let content = ev.content.replace("password", "********");
//!         Ok(ResponsePreDeliverDecision::Proceed(ResponsePreDeliverPatch { content: Some(content) }))
//!     }
//! }
//! export_plugin!(Redactor: Hooks);
//! ```
//!
//! Host capabilities are plain functions: [`log`], [`secrets`], [`kv`] and [`http`]. Each is
//! checked by the host against the manifest and the operator's grants; a denial comes back as a
//! typed error ([`HostError::Denied`], or `ErrorCode::HttpRequestDenied` for HTTP), never a trap.
//!
//! On a native target (your plugin's unit tests) the same functions talk to an in-memory
//! [`testing::MockHost`], so plugin logic can be tested with `cargo test` and no server.

#![warn(missing_docs)]

pub mod http;
pub mod testing;

/// Generated bindings for the `nitejar:plugin@0.1.0` world `plugin`. Most authors never touch
/// this module directly: the traits and re-exports below cover it.
#[doc(hidden)]
#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit/v0.1.0",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "__export_plugin_world",
        default_bindings_module: "::nitejar_plugin_sdk::bindings",
        additional_derives: [PartialEq],
    });
}

use bindings::exports::nitejar::plugin as exp;

pub use bindings::nitejar::plugin::types::{Denial, Header, HookName, HostError, PluginError};
pub use exp::metadata::Contributions;

/// Integration types: descriptors, webhook requests and outcomes, delivery results.
pub mod integration {
    pub use crate::bindings::exports::nitejar::plugin::integration::{
        Category, ConnectionStatus, Descriptor, InboundMessage, Instance, ParseOutcome,
        PostOptions, PostResult, ResponseMode, Sender, WebhookRequest, WebhookResponse,
    };
    pub use crate::{Header, PluginError};

    /// Answers a correctly authenticated request the plugin cannot use (a body that is not
    /// JSON, a required field missing) with 400 and the host's error shape
    /// `{"error": {"code", "message"}}`, so the sender learns it was not delivered. (`Ignored`
    /// answers 200: right for events the plugin chooses to skip, wrong for a malformed body.)
    pub fn bad_request(code: &str, message: &str) -> ParseOutcome {
        let body = serde_json::json!({ "error": { "code": code, "message": message } });
        ParseOutcome::Respond(WebhookResponse {
            status: 400,
            headers: vec![Header {
                name: "content-type".into(),
                value: "application/json".into(),
            }],
            body: body.to_string().into_bytes(),
        })
    }
}

/// Hook types: one event record per hook, patch records and block decisions.
pub mod hooks {
    pub use crate::bindings::exports::nitejar::plugin::hooks::*;
    pub use crate::{HookName, PluginError};
}

/// Tool types: definitions, call context and output.
pub mod tools {
    pub use crate::PluginError;
    pub use crate::bindings::exports::nitejar::plugin::tools::{
        ToolContext, ToolDefinition, ToolOutput,
    };
}

/// Skill types.
pub mod skills {
    pub use crate::bindings::exports::nitejar::plugin::skills::{Skill, SkillSource};
}

impl PluginError {
    /// A plugin error with `code` and `message`, not retryable.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        PluginError {
            code: code.to_string(),
            message: message.into(),
            retryable: false,
        }
    }

    /// A retryable plugin error (the platform was unreachable, rate limited, ...).
    pub fn retryable(code: &str, message: impl Into<String>) -> Self {
        PluginError {
            code: code.to_string(),
            message: message.into(),
            retryable: true,
        }
    }

    /// The error for an export the plugin did not implement.
    pub fn not_implemented(what: &str) -> Self {
        Self::new(
            "not_implemented",
            format!("this plugin does not implement {what}"),
        )
    }
}

impl From<HostError> for PluginError {
    fn from(e: HostError) -> Self {
        match e {
            HostError::Denied(d) => PluginError::new(
                "permission_denied",
                format!(
                    "{} access to {:?} denied; needs {}",
                    d.capability, d.target, d.required_grant
                ),
            ),
            HostError::LimitExceeded(m) => PluginError::new("limit_exceeded", m),
            HostError::InvalidInput(m) => PluginError::new("invalid_input", m),
            HostError::Unavailable(m) => PluginError::retryable("host_unavailable", m),
        }
    }
}

impl Contributions {
    /// Contributions of a plugin that only handles `hooks`.
    pub fn hooks(hooks: &[HookName]) -> Self {
        Contributions {
            integrations: vec![],
            hooks: hooks.to_vec(),
            tools: vec![],
            skills: vec![],
        }
    }

    /// Contributions of a plugin that only provides the integration `types`.
    pub fn integrations(types: &[&str]) -> Self {
        Contributions {
            integrations: types.iter().map(|s| s.to_string()).collect(),
            hooks: vec![],
            tools: vec![],
            skills: vec![],
        }
    }
}

/// Every plugin implements this: it says what the component contributes. The host compares the
/// answer with the manifest when the plugin is installed.
pub trait Plugin {
    /// The contributions this component implements.
    fn contributions() -> Contributions;
}

/// An integration: webhooks in, replies out. Every method has a default so a plugin overrides
/// only what its platform needs; `describe` and `parse_webhook` are the minimum.
pub trait Integration {
    /// Describes the integration types this component handles.
    fn describe() -> Vec<integration::Descriptor> {
        Vec::new()
    }
    /// Checks an instance config beyond its JSON Schema; returns operator-facing problems.
    fn validate_config(_integration_type: String, _config: String) -> Result<(), Vec<String>> {
        Ok(())
    }
    /// Turns a webhook into an outcome. Verify the platform's signature here.
    fn parse_webhook(
        _instance: integration::Instance,
        _request: integration::WebhookRequest,
    ) -> Result<integration::ParseOutcome, PluginError> {
        Err(PluginError::not_implemented("parse-webhook"))
    }
    /// Posts the agent's reply back to the platform.
    fn post_response(
        _instance: integration::Instance,
        _work_item_id: String,
        _content: String,
        _response_context: Option<String>,
        _options: integration::PostOptions,
    ) -> Result<integration::PostResult, PluginError> {
        Err(PluginError::not_implemented("post-response"))
    }
    /// Acknowledges receipt to the platform (typing indicator, reaction). Default: nothing.
    fn acknowledge_receipt(
        _instance: integration::Instance,
        _response_context: Option<String>,
    ) -> Result<(), PluginError> {
        Ok(())
    }
    /// Checks a configuration against the platform.
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

/// Hook handlers. Each default lets the event through unchanged; override the hooks you
/// declare in the manifest's `contributes.hooks`.
pub trait Hooks {
    /// `work_item.pre_create`: may edit title, payload, session key, or block.
    fn work_item_pre_create(
        _ctx: hooks::HookContext,
        _event: hooks::WorkItemPreCreateEvent,
    ) -> Result<hooks::WorkItemPreCreateDecision, PluginError> {
        Ok(hooks::WorkItemPreCreateDecision::Proceed(Default::default()))
    }
    /// `work_item.post_create`: observe only.
    fn work_item_post_create(
        _ctx: hooks::HookContext,
        _event: hooks::WorkItemPostCreateEvent,
    ) -> Result<(), PluginError> {
        Ok(())
    }
    /// `run.pre_prompt`: may replace the system prompt and the user message.
    fn run_pre_prompt(
        _ctx: hooks::HookContext,
        _event: hooks::RunPrePromptEvent,
    ) -> Result<hooks::RunPrePromptPatch, PluginError> {
        Ok(Default::default())
    }
    /// `model.pre_call`: may change model, temperature, max tokens, or block.
    fn model_pre_call(
        _ctx: hooks::HookContext,
        _event: hooks::ModelPreCallEvent,
    ) -> Result<hooks::ModelPreCallDecision, PluginError> {
        Ok(hooks::ModelPreCallDecision::Proceed(Default::default()))
    }
    /// `model.post_call`: observe only.
    fn model_post_call(
        _ctx: hooks::HookContext,
        _event: hooks::ModelPostCallEvent,
    ) -> Result<(), PluginError> {
        Ok(())
    }
    /// `tool.pre_exec`: may rewrite the tool input, or block the tool.
    fn tool_pre_exec(
        _ctx: hooks::HookContext,
        _event: hooks::ToolPreExecEvent,
    ) -> Result<hooks::ToolPreExecDecision, PluginError> {
        Ok(hooks::ToolPreExecDecision::Proceed(Default::default()))
    }
    /// `tool.post_exec`: may rewrite the tool output.
    fn tool_post_exec(
        _ctx: hooks::HookContext,
        _event: hooks::ToolPostExecEvent,
    ) -> Result<hooks::ToolPostExecPatch, PluginError> {
        Ok(Default::default())
    }
    /// `response.pre_deliver`: may rewrite the reply, or block delivery.
    fn response_pre_deliver(
        _ctx: hooks::HookContext,
        _event: hooks::ResponsePreDeliverEvent,
    ) -> Result<hooks::ResponsePreDeliverDecision, PluginError> {
        Ok(hooks::ResponsePreDeliverDecision::Proceed(
            Default::default(),
        ))
    }
    /// `response.post_deliver`: observe only.
    fn response_post_deliver(
        _ctx: hooks::HookContext,
        _event: hooks::ResponsePostDeliverEvent,
    ) -> Result<(), PluginError> {
        Ok(())
    }
}

/// Agent tools and the prompt section that explains them.
pub trait Tools {
    /// The tools offered to the model.
    fn list_tools() -> Vec<tools::ToolDefinition> {
        Vec::new()
    }
    /// A section for the run's system prompt.
    fn prompt_section(_ctx: tools::ToolContext) -> Option<String> {
        None
    }
    /// Runs a tool.
    fn call_tool(
        _ctx: tools::ToolContext,
        name: String,
        _input: String,
    ) -> Result<tools::ToolOutput, PluginError> {
        Err(PluginError::new(
            "unknown_tool",
            format!("no tool named {name}"),
        ))
    }
}

/// Skills contributed by the plugin.
pub trait Skills {
    /// The skills this plugin contributes.
    fn list_skills() -> Vec<skills::Skill> {
        Vec::new()
    }
}

// Default "patch" values: every field `None` means "leave as it was".
macro_rules! empty_patch {
    ($($t:ty { $($f:ident),* }),* $(,)?) => {$(
        impl Default for $t {
            fn default() -> Self { Self { $($f: None),* } }
        }
    )*};
}
empty_patch!(
    hooks::WorkItemPreCreatePatch {
        title,
        payload,
        session_key
    },
    hooks::RunPrePromptPatch {
        system_prompt,
        user_message
    },
    hooks::ModelPreCallPatch {
        model,
        temperature,
        max_tokens
    },
    hooks::ToolPreExecPatch { tool_input },
    hooks::ToolPostExecPatch { output },
    hooks::ResponsePreDeliverPatch { content },
);

impl<T: Plugin> exp::metadata::Guest for T {
    fn describe() -> Contributions {
        T::contributions()
    }
}

impl<T: Integration> exp::integration::Guest for T {
    fn describe() -> Vec<integration::Descriptor> {
        T::describe()
    }
    fn validate_config(integration_type: String, config: String) -> Result<(), Vec<String>> {
        T::validate_config(integration_type, config)
    }
    fn parse_webhook(
        instance: integration::Instance,
        request: integration::WebhookRequest,
    ) -> Result<integration::ParseOutcome, PluginError> {
        T::parse_webhook(instance, request)
    }
    fn post_response(
        instance: integration::Instance,
        work_item_id: String,
        content: String,
        response_context: Option<String>,
        options: integration::PostOptions,
    ) -> Result<integration::PostResult, PluginError> {
        T::post_response(instance, work_item_id, content, response_context, options)
    }
    fn acknowledge_receipt(
        instance: integration::Instance,
        response_context: Option<String>,
    ) -> Result<(), PluginError> {
        T::acknowledge_receipt(instance, response_context)
    }
    fn test_connection(
        integration_type: String,
        config: String,
    ) -> Result<integration::ConnectionStatus, PluginError> {
        T::test_connection(integration_type, config)
    }
}

impl<T: Hooks> exp::hooks::Guest for T {
    fn work_item_pre_create(
        ctx: hooks::HookContext,
        event: hooks::WorkItemPreCreateEvent,
    ) -> Result<hooks::WorkItemPreCreateDecision, PluginError> {
        T::work_item_pre_create(ctx, event)
    }
    fn work_item_post_create(
        ctx: hooks::HookContext,
        event: hooks::WorkItemPostCreateEvent,
    ) -> Result<(), PluginError> {
        T::work_item_post_create(ctx, event)
    }
    fn run_pre_prompt(
        ctx: hooks::HookContext,
        event: hooks::RunPrePromptEvent,
    ) -> Result<hooks::RunPrePromptPatch, PluginError> {
        T::run_pre_prompt(ctx, event)
    }
    fn model_pre_call(
        ctx: hooks::HookContext,
        event: hooks::ModelPreCallEvent,
    ) -> Result<hooks::ModelPreCallDecision, PluginError> {
        T::model_pre_call(ctx, event)
    }
    fn model_post_call(
        ctx: hooks::HookContext,
        event: hooks::ModelPostCallEvent,
    ) -> Result<(), PluginError> {
        T::model_post_call(ctx, event)
    }
    fn tool_pre_exec(
        ctx: hooks::HookContext,
        event: hooks::ToolPreExecEvent,
    ) -> Result<hooks::ToolPreExecDecision, PluginError> {
        T::tool_pre_exec(ctx, event)
    }
    fn tool_post_exec(
        ctx: hooks::HookContext,
        event: hooks::ToolPostExecEvent,
    ) -> Result<hooks::ToolPostExecPatch, PluginError> {
        T::tool_post_exec(ctx, event)
    }
    fn response_pre_deliver(
        ctx: hooks::HookContext,
        event: hooks::ResponsePreDeliverEvent,
    ) -> Result<hooks::ResponsePreDeliverDecision, PluginError> {
        T::response_pre_deliver(ctx, event)
    }
    fn response_post_deliver(
        ctx: hooks::HookContext,
        event: hooks::ResponsePostDeliverEvent,
    ) -> Result<(), PluginError> {
        T::response_post_deliver(ctx, event)
    }
}

impl<T: Tools> exp::tools::Guest for T {
    fn list_tools() -> Vec<tools::ToolDefinition> {
        T::list_tools()
    }
    fn prompt_section(ctx: tools::ToolContext) -> Option<String> {
        T::prompt_section(ctx)
    }
    fn call_tool(
        ctx: tools::ToolContext,
        name: String,
        input: String,
    ) -> Result<tools::ToolOutput, PluginError> {
        T::call_tool(ctx, name, input)
    }
}

impl<T: Skills> exp::skills::Guest for T {
    fn list_skills() -> Vec<skills::Skill> {
        T::list_skills()
    }
}

/// Exports a plugin type as the component's implementation.
///
/// List the contribution traits the type implements; the others get their defaults:
/// `export_plugin!(MyPlugin: Integration, Hooks);`. The type must implement [`Plugin`].
#[macro_export]
macro_rules! export_plugin {
    ($ty:ident $(: $($kind:ident),* $(,)?)?) => {
        $crate::__default_impl!(Integration, $ty; $($($kind)*)?);
        $crate::__default_impl!(Hooks, $ty; $($($kind)*)?);
        $crate::__default_impl!(Tools, $ty; $($($kind)*)?);
        $crate::__default_impl!(Skills, $ty; $($($kind)*)?);
        // The component's exports exist only in the wasm build: a native build (unit tests,
        // the fuzz targets) calls the traits directly, and a native shared library could not
        // carry export names like `nitejar:plugin/integration@0.1.0#parse-webhook`.
        #[cfg(target_arch = "wasm32")]
        $crate::bindings::__export_plugin_world!($ty with_types_in $crate::bindings);
    };
}

/// Implements contribution trait `$kind` with its defaults unless the caller listed it.
#[doc(hidden)]
#[macro_export]
macro_rules! __default_impl {
    (Integration, $ty:ident; Integration $($rest:ident)*) => {};
    (Hooks, $ty:ident; Hooks $($rest:ident)*) => {};
    (Tools, $ty:ident; Tools $($rest:ident)*) => {};
    (Skills, $ty:ident; Skills $($rest:ident)*) => {};
    ($kind:ident, $ty:ident; $other:ident $($rest:ident)*) => {
        $crate::__default_impl!($kind, $ty; $($rest)*);
    };
    ($kind:ident, $ty:ident;) => {
        impl $crate::$kind for $ty {}
    };
}

/// Guest logging. Lines go to the host's tracing output and the plugin's receipts.
pub mod log {
    use crate::bindings::nitejar::plugin::log::Level;

    fn write(level: Level, message: &str) {
        #[cfg(target_arch = "wasm32")]
        crate::bindings::nitejar::plugin::log::write(level, message);
        #[cfg(not(target_arch = "wasm32"))]
        crate::testing::with_host(|h| h.logs.push((format!("{level:?}"), message.to_string())));
    }
    /// Logs at debug level.
    pub fn debug(message: &str) {
        write(Level::Debug, message)
    }
    /// Logs at info level.
    pub fn info(message: &str) {
        write(Level::Info, message)
    }
    /// Logs at warn level.
    pub fn warn(message: &str) {
        write(Level::Warn, message)
    }
    /// Logs at error level.
    pub fn error(message: &str) {
        write(Level::Error, message)
    }
}

/// Secrets the operator granted to this plugin (declare them in `permissions.secrets`).
pub mod secrets {
    use crate::HostError;

    /// Returns the secret `key`, or a typed denial if it is not declared and granted.
    pub fn get(key: &str) -> Result<String, HostError> {
        #[cfg(target_arch = "wasm32")]
        return crate::bindings::nitejar::plugin::secrets::get(key);
        #[cfg(not(target_arch = "wasm32"))]
        return crate::testing::with_host(|h| h.secret(key));
    }
}

/// Per-plugin key-value storage: the plugin's own data, removed by uninstall with purge-data.
pub mod kv {
    use crate::HostError;

    #[cfg(target_arch = "wasm32")]
    use crate::bindings::nitejar::plugin::kv as imp;

    /// Returns the value under `key`, if any.
    pub fn get(key: &str) -> Result<Option<Vec<u8>>, HostError> {
        #[cfg(target_arch = "wasm32")]
        return imp::get(key);
        #[cfg(not(target_arch = "wasm32"))]
        return crate::testing::with_host(|h| Ok(h.kv.get(key).cloned()));
    }
    /// Stores `value` under `key`.
    pub fn set(key: &str, value: &[u8]) -> Result<(), HostError> {
        #[cfg(target_arch = "wasm32")]
        return imp::set(key, value);
        #[cfg(not(target_arch = "wasm32"))]
        return crate::testing::with_host(|h| {
            h.kv.insert(key.to_string(), value.to_vec());
            Ok(())
        });
    }
    /// Removes `key`; returns whether it existed.
    pub fn delete(key: &str) -> Result<bool, HostError> {
        #[cfg(target_arch = "wasm32")]
        return imp::delete(key);
        #[cfg(not(target_arch = "wasm32"))]
        return crate::testing::with_host(|h| Ok(h.kv.remove(key).is_some()));
    }
    /// Lists keys starting with `prefix`, in byte order.
    pub fn list_keys(prefix: &str) -> Result<Vec<String>, HostError> {
        #[cfg(target_arch = "wasm32")]
        return imp::list_keys(prefix);
        #[cfg(not(target_arch = "wasm32"))]
        return crate::testing::with_host(|h| {
            Ok(h.kv
                .keys()
                .filter(|k| k.starts_with(prefix))
                .cloned()
                .collect())
        });
    }
}

/// Cryptographically secure random bytes from the host (`wasi:random`), e.g. for nonces.
pub mod random {
    /// Returns `len` random bytes. Natively (unit tests) the bytes come from the standard
    /// library's randomly seeded hasher: unpredictable enough for tests, not for keys.
    pub fn bytes(len: usize) -> Vec<u8> {
        #[cfg(target_arch = "wasm32")]
        return wasip2::random::random::get_random_bytes(len as u64);
        #[cfg(not(target_arch = "wasm32"))]
        {
            use std::hash::{BuildHasher, Hasher};
            let mut out = Vec::with_capacity(len);
            while out.len() < len {
                let mut h = std::collections::hash_map::RandomState::new().build_hasher();
                h.write_usize(out.len());
                out.extend_from_slice(&h.finish().to_le_bytes());
            }
            out.truncate(len);
            out
        }
    }
}

/// Replies posted once per idempotency key, across host crashes and deadlines.
///
/// The host passes every `post-response` call the reply's idempotency key (the job id; the same
/// on every attempt, in this process or after a restart). [`Guard`] keeps, in the plugin's kv
/// under [`KEY_PREFIX`]`<key>`, how far earlier attempts got: which parts of the reply were
/// sent, and whether one was handed to the platform without an answer (the process was killed,
/// or the call ran past its deadline). The plugin then skips what was sent, and for a part whose
/// outcome is unknown asks the platform where it can (GitHub: find the comment carrying the
/// reply's marker) or applies its documented policy where it cannot (Telegram: at most once).
/// The host deletes the entry once it has recorded the reply's outcome, so entries exist only
/// for replies in flight.
///
/// ```ignore
/// let mut guard = delivery::Guard::new(&options);
/// if guard.part(0) == delivery::Part::Sent { /* answer with guard.external_id() */ }
/// guard.sending(0);
/// match post(...) {
///     Ok(id) => guard.sent(0, Some(&id)),
///     Err(refused) => guard.not_sent(0), // the platform answered: it has nothing
/// }
/// ```
pub mod delivery {
    use crate::integration::PostOptions;

    /// Where the guard keeps its entries in the plugin's kv (`nitejar/delivery/<key>`); the
    /// host removes a reply's entry after recording the reply's outcome.
    pub const KEY_PREFIX: &str = "nitejar/delivery/";

    /// What earlier attempts did with one part of a reply.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Part {
        /// Not handed to the platform yet: send it.
        NotSent,
        /// Sent and answered by the platform: do not send it again.
        Sent,
        /// Handed to the platform, with no answer recorded: it may or may not have arrived.
        Uncertain,
    }

    /// The progress of one reply (see the module docs).
    #[derive(Debug)]
    pub struct Guard {
        key: Option<String>,
        /// Parts sent, in order.
        sent: usize,
        /// Whether part `sent` was handed to the platform without an answer.
        started: bool,
        /// The platform's id of the first part.
        external_id: Option<String>,
        /// When part `sent` was handed over (Unix seconds), if it was.
        started_at: Option<u64>,
    }

    impl Guard {
        /// The guard for the reply `options` names (no key: a guard that remembers nothing).
        pub fn new(options: &PostOptions) -> Guard {
            let key = options
                .idempotency_key
                .as_deref()
                .filter(|k| !k.is_empty())
                .map(|k| format!("{KEY_PREFIX}{k}"));
            let mut guard = Guard {
                key,
                sent: 0,
                started: false,
                external_id: None,
                started_at: None,
            };
            if let Some(k) = &guard.key
                && let Ok(Some(v)) = crate::kv::get(k)
            {
                guard.load(&String::from_utf8_lossy(&v));
            }
            guard
        }

        /// Parses `<sent> <started 0|1> <started-at> <external id>`.
        fn load(&mut self, text: &str) {
            let mut fields = text.splitn(4, ' ');
            self.sent = fields.next().and_then(|f| f.parse().ok()).unwrap_or(0);
            self.started = fields.next() == Some("1");
            self.started_at = fields
                .next()
                .and_then(|f| f.parse().ok())
                .filter(|t| *t > 0);
            self.external_id = fields.next().filter(|f| !f.is_empty()).map(str::to_string);
        }

        fn save(&self) {
            let Some(k) = &self.key else {
                return;
            };
            let value = format!(
                "{} {} {} {}",
                self.sent,
                u8::from(self.started),
                self.started_at.unwrap_or(0),
                self.external_id.as_deref().unwrap_or("")
            );
            if let Err(e) = crate::kv::set(k, value.as_bytes()) {
                crate::log::warn(&format!(
                    "recording the reply's progress failed ({e:?}); a retry may repeat a part"
                ));
            }
        }

        /// What earlier attempts did with part `i` (0-based; parts are sent in order).
        pub fn part(&self, i: usize) -> Part {
            if i < self.sent {
                Part::Sent
            } else if i == self.sent && self.started {
                Part::Uncertain
            } else {
                Part::NotSent
            }
        }

        /// The platform's id of the first part, when an earlier attempt recorded it.
        pub fn external_id(&self) -> Option<&str> {
            self.external_id.as_deref()
        }

        /// When the part whose outcome is unknown was handed to the platform (Unix seconds).
        pub fn started_at(&self) -> Option<u64> {
            self.started_at
        }

        /// Records that part `i` is about to be handed to the platform. Call it right before
        /// the request: from here until [`Guard::sent`] or [`Guard::not_sent`], a crash leaves
        /// the part [`Part::Uncertain`].
        pub fn sending(&mut self, i: usize) {
            self.sent = i;
            self.started = true;
            self.started_at = Some(now_secs());
            self.save();
        }

        /// Records that the platform accepted part `i` (`external_id`: its id for the part).
        /// Also for a part found on the platform, or one given up under an at-most-once policy.
        pub fn sent(&mut self, i: usize, external_id: Option<&str>) {
            self.sent = i + 1;
            self.started = false;
            self.started_at = None;
            if self.external_id.is_none() {
                self.external_id = external_id.map(str::to_string);
            }
            self.save();
        }

        /// Records that part `i` did not reach the platform (it answered with an error), so the
        /// next attempt sends it again.
        pub fn not_sent(&mut self, i: usize) {
            self.sent = i;
            self.started = false;
            self.started_at = None;
            self.save();
        }
    }

    fn now_secs() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    /// `secs` (Unix time) as an RFC 3339 UTC timestamp, e.g. for an API's `since` parameter.
    pub fn rfc3339(secs: u64) -> String {
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
            rem / 3_600,
            rem % 3_600 / 60,
            rem % 60
        )
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::testing::{MockHost, with_host};

        fn options(key: &str) -> PostOptions {
            PostOptions {
                hit_limit: false,
                idempotency_key: Some(key.into()),
            }
        }

        #[test]
        fn progress_survives_a_new_guard_and_an_interrupted_part_is_uncertain() {
            MockHost::default().install();
            let mut g = Guard::new(&options("job-1"));
            assert_eq!(g.part(0), Part::NotSent);
            g.sending(0);
            g.sent(0, Some("m-1"));
            g.sending(1);
            // The process dies here; the next attempt reads what was recorded.
            let g = Guard::new(&options("job-1"));
            assert_eq!(g.part(0), Part::Sent);
            assert_eq!(g.part(1), Part::Uncertain);
            assert_eq!(g.part(2), Part::NotSent);
            assert_eq!(g.external_id(), Some("m-1"));
            assert!(g.started_at().is_some());
            // Another reply is unaffected; a refused part is sent again.
            let mut other = Guard::new(&options("job-2"));
            assert_eq!(other.part(0), Part::NotSent);
            other.sending(0);
            other.not_sent(0);
            assert_eq!(Guard::new(&options("job-2")).part(0), Part::NotSent);
            let keys: Vec<String> = with_host(|h| h.kv.keys().cloned().collect());
            assert_eq!(keys, ["nitejar/delivery/job-1", "nitejar/delivery/job-2"]);
        }

        #[test]
        fn without_a_key_nothing_is_remembered() {
            MockHost::default().install();
            let mut g = Guard::new(&PostOptions {
                hit_limit: false,
                idempotency_key: None,
            });
            g.sending(0);
            assert!(with_host(|h| h.kv.is_empty()));
        }

        #[test]
        fn timestamps_are_rfc3339() {
            assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
            assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
            assert_eq!(rfc3339(1_796_091_128), "2026-12-01T02:12:08Z");
        }
    }
}
