//! Shared queues keyed by (vm_id, name), as cpp-host's `SharedData` queues.

use std::collections::{HashMap, VecDeque};

/// Where `on_queue_ready` goes: the VM and root context that registered the queue last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueOwner {
    pub worker: usize,
    pub vm: usize,
    pub context_id: u32,
}

#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<Vec<u8>>,
    owner: Option<QueueOwner>,
}

#[derive(Debug)]
pub struct Queues {
    tokens: HashMap<(String, String), u32>,
    queues: HashMap<u32, Queue>,
    next_token: u32,
}

impl Default for Queues {
    fn default() -> Self {
        Queues {
            tokens: HashMap::new(),
            queues: HashMap::new(),
            next_token: 1,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum DequeueError {
    NotFound,
    Empty,
}

impl Queues {
    /// Registering again keeps the token and the items but moves the owner.
    pub fn register(&mut self, vm_id: &str, name: &str, owner: QueueOwner) -> u32 {
        let key = (vm_id.to_string(), name.to_string());
        let token = match self.tokens.get(&key) {
            Some(t) => *t,
            None => {
                let t = self.next_token;
                self.next_token = self.next_token.wrapping_add(1).max(1);
                self.tokens.insert(key, t);
                t
            }
        };
        self.queues.entry(token).or_default().owner = Some(owner);
        token
    }

    pub fn resolve(&self, vm_id: &str, name: &str) -> Option<u32> {
        self.tokens
            .get(&(vm_id.to_string(), name.to_string()))
            .copied()
    }

    /// Returns who to notify.
    pub fn enqueue(&mut self, token: u32, value: &[u8]) -> Option<Option<QueueOwner>> {
        let q = self.queues.get_mut(&token)?;
        q.items.push_back(value.to_vec());
        Some(q.owner)
    }

    pub fn dequeue(&mut self, token: u32) -> Result<Vec<u8>, DequeueError> {
        let q = self.queues.get_mut(&token).ok_or(DequeueError::NotFound)?;
        q.items.pop_front().ok_or(DequeueError::Empty)
    }

    pub fn len(&self, vm_id: &str, name: &str) -> usize {
        self.resolve(vm_id, name)
            .and_then(|t| self.queues.get(&t))
            .map_or(0, |q| q.items.len())
    }
}
