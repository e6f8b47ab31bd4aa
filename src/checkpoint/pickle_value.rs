//! The plain data a PyTorch pickle is rebuilt into: values, and tensors as views of storages.

/// Element type of a torch storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageDtype {
    F32,
    F16,
    BF16,
    F64,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl StorageDtype {
    /// The dtype of a `torch.<Name>Storage` global, if it is one.
    pub fn from_storage_name(name: &str) -> Option<Self> {
        Some(match name {
            "FloatStorage" => Self::F32,
            "HalfStorage" => Self::F16,
            "BFloat16Storage" => Self::BF16,
            "DoubleStorage" => Self::F64,
            "LongStorage" => Self::I64,
            "IntStorage" => Self::I32,
            "ShortStorage" => Self::I16,
            "CharStorage" => Self::I8,
            "ByteStorage" => Self::U8,
            "BoolStorage" => Self::Bool,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::F64 | Self::I64 => 8,
            Self::F32 | Self::I32 => 4,
            Self::F16 | Self::BF16 | Self::I16 => 2,
            Self::I8 | Self::U8 | Self::Bool => 1,
        }
    }

    /// The dtype the reader gives this storage as (narrow integers widen to I64, bool to U8).
    pub fn candle_dtype(self) -> candle_core::DType {
        use candle_core::DType;
        match self {
            Self::F32 => DType::F32,
            Self::F16 => DType::F16,
            Self::BF16 => DType::BF16,
            Self::F64 => DType::F64,
            Self::I64 | Self::I32 | Self::I16 | Self::I8 => DType::I64,
            Self::U8 | Self::Bool => DType::U8,
        }
    }

    /// The torch name, for messages and `inspect`.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "float32",
            Self::F16 => "float16",
            Self::BF16 => "bfloat16",
            Self::F64 => "float64",
            Self::I64 => "int64",
            Self::I32 => "int32",
            Self::I16 => "int16",
            Self::I8 => "int8",
            Self::U8 => "uint8",
            Self::Bool => "bool",
        }
    }
}

/// A storage as named by a persistent id: which bytes, of what type.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageRef {
    /// The key of the storage in the file (zip entry `data/<key>`, or the legacy storage key).
    pub key: String,
    pub dtype: StorageDtype,
    /// Number of elements the storage holds, as the persistent id declares it.
    pub numel: usize,
    /// Element offset inside the stored storage (legacy views of a larger storage; 0 otherwise).
    pub offset: usize,
}

/// A tensor as described by `_rebuild_tensor_v2`: a view (offset, shape, stride) of a storage.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorRef {
    pub storage: StorageRef,
    /// Offset in elements from the start of the storage.
    pub offset: usize,
    pub shape: Vec<usize>,
    pub stride: Vec<usize>,
}

impl TensorRef {
    /// Number of elements (saturating: shapes come from the file).
    pub fn numel(&self) -> usize {
        self.shape.iter().fold(1usize, |a, &d| a.saturating_mul(d))
    }

    /// Element type as stored in the file (see `pth` for the candle dtype it becomes).
    pub fn dtype(&self) -> StorageDtype {
        self.storage.dtype
    }
}

/// A Python object rebuilt as plain data.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer too large for i64 (e.g. the legacy magic number), as little-endian two's complement.
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Tuple(Vec<Value>),
    /// dict, OrderedDict and Counter, in insertion order.
    Dict(Vec<(Value, Value)>),
    Set(Vec<Value>),
    /// An allow-listed global that was not called (e.g. `torch.FloatStorage` in a persistent id).
    Global(String, String),
    /// A storage returned by the persistent-id loader.
    Storage(StorageRef),
    Tensor(TensorRef),
    /// An instance of an allow-listed class that is kept as data (argparse.Namespace, slice, …):
    /// its class, constructor arguments and BUILD state.
    Object {
        module: String,
        name: String,
        args: Vec<Value>,
        state: Option<Box<Value>>,
    },
}

impl Value {
    /// The entries of a dict-like value.
    pub fn as_dict(&self) -> Option<&[(Value, Value)]> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }

    /// Looks up a string key in a dict value (or in a Namespace's state).
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(d) => d
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            Value::Object {
                state: Some(state), ..
            } => state.get(key),
            _ => None,
        }
    }

    /// Short description of the kind of value, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::BigInt(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::List(_) => "list",
            Value::Tuple(_) => "tuple",
            Value::Dict(_) => "dict",
            Value::Set(_) => "set",
            Value::Global(..) => "global",
            Value::Storage(_) => "storage",
            Value::Tensor(_) => "tensor",
            Value::Object { .. } => "object",
        }
    }

    /// Number of nodes, stopping early once `limit` is passed (used for the memo budget).
    pub(super) fn count_nodes(&self, limit: usize) -> usize {
        let mut n = 1usize;
        let add = |v: &Value, n: &mut usize| {
            if *n <= limit {
                *n = n.saturating_add(v.count_nodes(limit - *n));
            }
        };
        match self {
            Value::List(v) | Value::Tuple(v) | Value::Set(v) => {
                for x in v {
                    add(x, &mut n);
                }
            }
            Value::Dict(d) => {
                for (k, v) in d {
                    add(k, &mut n);
                    add(v, &mut n);
                }
            }
            Value::Object { args, state, .. } => {
                for x in args {
                    add(x, &mut n);
                }
                if let Some(s) = state {
                    add(s, &mut n);
                }
            }
            _ => {}
        }
        n
    }

    /// Nesting depth, stopping once it passes `limit`.
    pub(super) fn depth(&self, limit: usize) -> usize {
        if limit == 0 {
            return 1;
        }
        let children = match self {
            Value::List(v) | Value::Tuple(v) | Value::Set(v) => {
                v.iter().map(|x| x.depth(limit - 1)).max().unwrap_or(0)
            }
            Value::Dict(d) => d
                .iter()
                .map(|(k, v)| k.depth(limit - 1).max(v.depth(limit - 1)))
                .max()
                .unwrap_or(0),
            Value::Object { args, state, .. } => args
                .iter()
                .map(|x| x.depth(limit - 1))
                .chain(state.iter().map(|s| s.depth(limit - 1)))
                .max()
                .unwrap_or(0),
            _ => 0,
        };
        children + 1
    }
}
