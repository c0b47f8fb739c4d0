//! Which fields of which messages can hold a map, from the descriptors.

use foldhash::{HashMap, HashMapExt};

use prost_reflect::{DescriptorPool, FieldDescriptor, Kind, MessageDescriptor};

use super::CanonicalError;

const ANY: &str = "google.protobuf.Any";

/// What to do with a length-delimited field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    /// A message that can hold a map: visit it (plan index).
    Message(usize),
    /// A map entry; its plan index when its value can hold a map.
    Map(Option<usize>),
}

/// The fields of one message that lead to a map; every other field is
/// left as encoded.
#[derive(Debug)]
pub(super) struct Plan {
    /// Full protobuf name, for errors.
    pub(super) name: String,
    /// `google.protobuf.Any`: the payload is read by its type URL.
    pub(super) is_any: bool,
    /// Sorted by field number.
    fields: Vec<(u32, Action)>,
}

impl Plan {
    /// The action for field `number`, `None` to leave it as it is.
    pub(super) fn action(&self, number: u32) -> Option<Action> {
        let found = self.fields.binary_search_by_key(&number, |(n, _)| *n);
        found.ok().map(|i| self.fields[i].1)
    }
}

/// The plans of every message that can hold a map or an `Any`.
#[derive(Debug)]
pub(super) struct Plans {
    plans: Vec<Plan>,
    /// Every message of the pool by full name: its plan, or `None` when it
    /// can hold neither a map nor an `Any`.
    by_name: HashMap<String, Option<usize>>,
}

impl Plans {
    /// Compiles the plans of every message in `pool`.
    pub(super) fn compile(pool: &DescriptorPool) -> Plans {
        let messages: Vec<MessageDescriptor> = pool.all_messages().collect();
        let visit = needs_visit(&messages);
        let mut by_name = HashMap::with_capacity(messages.len());
        let mut index = HashMap::new();
        for (m, &v) in messages.iter().zip(&visit) {
            let plan = v.then(|| {
                index.insert(m.full_name().to_string(), index.len());
                index.len() - 1
            });
            by_name.insert(m.full_name().to_string(), plan);
        }
        let plans = (messages.iter().zip(&visit))
            .filter(|(_, &v)| v)
            .map(|(m, _)| plan_of(m, &index))
            .collect();
        Plans { plans, by_name }
    }

    /// The plan of a message by full name; `None` when nothing in it needs
    /// visiting.
    pub(super) fn lookup(&self, name: &str) -> Result<Option<usize>, CanonicalError> {
        self.by_name
            .get(name)
            .copied()
            .ok_or_else(|| CanonicalError::UnknownType(name.to_string()))
    }

    /// The plan at `index` (from [`Plans::lookup`] or an [`Action`]).
    pub(super) fn plan(&self, index: usize) -> &Plan {
        &self.plans[index]
    }
}

/// For each message, whether it can hold a map or an `Any`, at any depth:
/// the least fixed point (recursive types such as `Struct` included).
fn needs_visit(messages: &[MessageDescriptor]) -> Vec<bool> {
    let position: HashMap<&str, usize> = (messages.iter().enumerate())
        .map(|(i, m)| (m.full_name(), i))
        .collect();
    let mut visit: Vec<bool> = (messages.iter())
        .map(|m| m.full_name() == ANY || m.fields().any(|f| f.is_map()))
        .collect();
    let mut changed = true;
    while changed {
        changed = false;
        for (i, m) in messages.iter().enumerate() {
            if visit[i] {
                continue;
            }
            let leads = m.fields().any(|f| {
                message_type(&f)
                    .and_then(|t| position.get(t.full_name()))
                    .is_some_and(|&j| visit[j])
            });
            if leads {
                visit[i] = true;
                changed = true;
            }
        }
    }
    visit
}

fn message_type(field: &FieldDescriptor) -> Option<MessageDescriptor> {
    match field.kind() {
        Kind::Message(m) => Some(m),
        _ => None,
    }
}

/// The plan of one message, given the plan index of every message that
/// needs visiting.
fn plan_of(m: &MessageDescriptor, index: &HashMap<String, usize>) -> Plan {
    let planned = |t: &MessageDescriptor| index.get(t.full_name()).copied();
    let mut fields: Vec<(u32, Action)> = (m.fields())
        .filter_map(|f| {
            let target = message_type(&f)?;
            let action = if f.is_map() {
                Action::Map(planned(&target))
            } else {
                Action::Message(planned(&target)?)
            };
            Some((f.number(), action))
        })
        .collect();
    fields.sort_by_key(|(n, _)| *n);
    Plan {
        name: m.full_name().to_string(),
        is_any: m.full_name() == ANY,
        fields,
    }
}
