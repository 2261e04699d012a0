//! How many bytes a plugin returned: the host caps data crossing the boundary per call
//! ([`crate::limits::MAX_GUEST_OUTPUT_BYTES`]).

use crate::bindings::exports::nitejar::plugin::{
    hooks as h, integration as i, metadata as m, skills as sk, tools as t,
};
use crate::bindings::nitejar::plugin::types::{Header, HookName};

/// Bytes of strings and lists a value carries (fixed-size fields count as zero).
pub trait OutputSize {
    /// The size.
    fn output_bytes(&self) -> usize;
}

impl OutputSize for String {
    fn output_bytes(&self) -> usize {
        self.len()
    }
}
impl OutputSize for Vec<u8> {
    fn output_bytes(&self) -> usize {
        self.len()
    }
}
impl<T: OutputSize> OutputSize for Option<T> {
    fn output_bytes(&self) -> usize {
        self.as_ref().map_or(0, OutputSize::output_bytes)
    }
}
impl<A: OutputSize, B: OutputSize> OutputSize for (A, B) {
    fn output_bytes(&self) -> usize {
        self.0.output_bytes() + self.1.output_bytes()
    }
}
impl<T: OutputSize, E: OutputSize> OutputSize for Result<T, E> {
    fn output_bytes(&self) -> usize {
        match self {
            Ok(v) => v.output_bytes(),
            Err(e) => e.output_bytes(),
        }
    }
}
impl OutputSize for () {
    fn output_bytes(&self) -> usize {
        0
    }
}
macro_rules! fixed_size {
    ($($t:ty),*) => {$(
        impl OutputSize for $t {
            fn output_bytes(&self) -> usize {
                0
            }
        }
    )*};
}
fixed_size!(bool, u32, u64, f64);

macro_rules! list_size {
    ($($t:ty),*) => {$(
        impl OutputSize for Vec<$t> {
            fn output_bytes(&self) -> usize {
                self.iter().map(OutputSize::output_bytes).sum()
            }
        }
    )*};
}
list_size!(
    String,
    Header,
    i::Descriptor,
    HookName,
    t::ToolDefinition,
    sk::Skill
);

macro_rules! record_size {
    ($($t:ty { $($f:ident),* }),* $(,)?) => {$(
        impl OutputSize for $t {
            fn output_bytes(&self) -> usize {
                0 $(+ self.$f.output_bytes())*
            }
        }
    )*};
}
record_size!(
    Header { name, value },
    i::Sender { id, name },
    i::InboundMessage {
        title,
        text,
        session_key,
        source_ref,
        sender,
        command,
        idempotency_key,
        payload,
        response_context
    },
    i::WebhookResponse { headers, body },
    i::WebhookRequest {
        method,
        path,
        query,
        headers,
        body
    },
    i::Descriptor {
        integration_type,
        display_name,
        description,
        icon,
        config_schema,
        ui_schema,
        sensitive_fields
    },
    m::Contributions {
        integrations,
        hooks,
        tools,
        skills
    },
    h::WorkItemPreCreatePatch {
        title,
        payload,
        session_key
    },
    h::RunPrePromptPatch {
        system_prompt,
        user_message
    },
    h::ToolPreExecPatch { tool_input },
    h::ToolPostExecPatch { output },
    h::ResponsePreDeliverPatch { content },
    t::ToolDefinition {
        name,
        description,
        parameters
    },
    t::ToolOutput { output },
    i::PostResult {
        external_id,
        detail
    },
    i::ConnectionStatus { detail },
    sk::Skill {
        id,
        name,
        description,
        source,
        tags
    },
    // The hook events (what a handler is given: its output cap grows by this much, so a
    // handler may hand back what another plugin produced, changed).
    h::WorkItemDraft {
        title,
        text,
        session_key,
        source_ref,
        payload
    },
    h::WorkItem {
        id,
        title,
        text,
        session_key,
        source_ref,
        payload,
        status
    },
    h::WorkItemPreCreateEvent {
        work_item,
        integration_type,
        plugin_instance_id
    },
    h::WorkItemPostCreateEvent {
        work_item,
        integration_type,
        plugin_instance_id
    },
    h::AgentInfo { id, name, model },
    h::RunPrePromptEvent {
        system_prompt,
        user_message,
        agent,
        work_item
    },
    h::ModelPreCallEvent {
        model,
        messages,
        tools
    },
    h::Usage { cost_usd },
    h::ModelPostCallEvent {
        response,
        model,
        usage
    },
    h::ToolPreExecEvent {
        tool_name,
        tool_input,
        tool_call_id
    },
    h::ToolResult { output },
    h::ToolPostExecEvent {
        tool_name,
        tool_input,
        tool_call_id,
        tool_result
    },
    h::ResponsePreDeliverEvent {
        content,
        integration_type,
        plugin_instance_id,
        work_item_id
    },
    h::DeliveryResult { external_id, error },
    h::ResponsePostDeliverEvent {
        content,
        delivery,
        integration_type,
        plugin_instance_id,
        work_item_id
    },
);

impl OutputSize for sk::SkillSource {
    fn output_bytes(&self) -> usize {
        match self {
            sk::SkillSource::Inline(s) | sk::SkillSource::File(s) => s.len(),
        }
    }
}

impl OutputSize for HookName {
    fn output_bytes(&self) -> usize {
        0
    }
}
impl OutputSize for h::ModelPreCallPatch {
    fn output_bytes(&self) -> usize {
        self.model.output_bytes()
    }
}

impl OutputSize for i::ParseOutcome {
    fn output_bytes(&self) -> usize {
        match self {
            i::ParseOutcome::WorkItem(m) => m.output_bytes(),
            i::ParseOutcome::Ignored(s) | i::ParseOutcome::Unauthorized(s) => s.len(),
            i::ParseOutcome::Respond(r) => r.output_bytes(),
        }
    }
}

macro_rules! decision_size {
    ($($t:ident),*) => {$(
        impl OutputSize for h::$t {
            fn output_bytes(&self) -> usize {
                match self {
                    h::$t::Proceed(p) => p.output_bytes(),
                    h::$t::Block(reason) => reason.len(),
                }
            }
        }
    )*};
}
decision_size!(
    WorkItemPreCreateDecision,
    ModelPreCallDecision,
    ToolPreExecDecision,
    ResponsePreDeliverDecision
);
