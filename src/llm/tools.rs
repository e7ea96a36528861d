//! Tool calls: a request's `tools` and `tool_choice`, the model's choice
//! to call one, and the call it then streams.
//!
//! Chat takes `tools: [{"type": "function", "function": {"name",
//! "parameters"}}]`, the Responses API `[{"type": "function", "name",
//! "parameters"}]`; tools of other types are accepted and never called.
//! `tool_choice` is `"none"`, `"auto"` (the default when functions are
//! given: a call with probability `--llm-tool-call-rate`), `"required"`
//! (always a call), or one function by name (chat:
//! `{"type": "function", "function": {"name"}}`, Responses:
//! `{"type": "function", "name"}`). The function called is drawn among
//! the candidates (seeded by `--llm-seed`); its arguments are JSON that
//! fits its `parameters` schema ([`arguments`]) and are the answer's output
//! tokens, four characters a token as the tokenizer counts text.

use std::ops::Range;

use serde_json::{Map, Value};

use super::error::OpenAiError;
use super::model::WORDS;

/// Where the tools come from: chat nests a function's spec under
/// `function`, the Responses API does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Chat,
    Responses,
}

/// Deepest nesting of a schema the arguments follow (deeper: `null`).
const MAX_DEPTH: u32 = 16;

/// A function the request offers.
#[derive(Debug, Clone, PartialEq)]
pub struct Function {
    pub name: String,
    /// The JSON schema of its arguments (`{}` when none was given).
    pub parameters: Value,
}

/// `tool_choice`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ToolChoice {
    None,
    #[default]
    Auto,
    Required,
    Named(String),
}

/// The functions a request offers and how the model may use them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tools {
    pub functions: Vec<Function>,
    pub choice: ToolChoice,
    /// The conversation ends with a tool's result: under `auto` the model
    /// answers it with text, as a model that got what it asked for does.
    pub after_tool_result: bool,
}

fn invalid(param: &'static str, message: String) -> OpenAiError {
    OpenAiError::invalid(Some(param), Some("invalid_value"), message)
}

impl Tools {
    /// `tools` and `tool_choice` of a request body on `api` (absent: no
    /// functions, `auto`). 400 naming the parameter for a malformed tool,
    /// an unknown choice, or a call required or named without the
    /// function to make it.
    pub fn parse(
        api: Api,
        tools: Option<&Value>,
        choice: Option<&Value>,
    ) -> Result<Self, OpenAiError> {
        let mut functions = Vec::new();
        match tools {
            None | Some(Value::Null) => {}
            Some(Value::Array(tools)) => {
                for (i, tool) in tools.iter().enumerate() {
                    if let Some(function) = function(api, tool, i)? {
                        functions.push(function);
                    }
                }
            }
            Some(_) => {
                return Err(invalid(
                    "tools",
                    "Invalid 'tools': expected an array.".to_owned(),
                ))
            }
        }
        let choice = match choice {
            None | Some(Value::Null) => ToolChoice::Auto,
            Some(Value::String(s)) => match s.as_str() {
                "none" => ToolChoice::None,
                "auto" => ToolChoice::Auto,
                "required" => ToolChoice::Required,
                other => {
                    return Err(invalid(
                        "tool_choice",
                        format!("Invalid 'tool_choice': {other:?}. Expected 'none', 'auto', 'required' or a function."),
                    ))
                }
            },
            Some(Value::Object(o)) => {
                // Chat nests the name under `function`; Responses does not.
                let name = o
                    .get("function")
                    .and_then(|f| f.get("name"))
                    .or_else(|| o.get("name"))
                    .and_then(Value::as_str);
                match name {
                    Some(name) if o.get("type").and_then(Value::as_str) == Some("function") => {
                        ToolChoice::Named(name.to_owned())
                    }
                    _ => {
                        return Err(invalid(
                            "tool_choice",
                            "Invalid 'tool_choice': a named choice is {\"type\": \"function\", \"function\": {\"name\": ...}}."
                                .to_owned(),
                        ))
                    }
                }
            }
            Some(_) => {
                return Err(invalid(
                    "tool_choice",
                    "Invalid 'tool_choice': expected a string or an object.".to_owned(),
                ))
            }
        };
        match &choice {
            ToolChoice::Required if functions.is_empty() => Err(invalid(
                "tool_choice",
                "Invalid 'tool_choice': 'required' needs at least one function in 'tools'."
                    .to_owned(),
            )),
            ToolChoice::Named(name) if !functions.iter().any(|f| &f.name == name) => Err(invalid(
                "tool_choice",
                format!("Invalid 'tool_choice': no function named {name:?} in 'tools'."),
            )),
            _ => Ok(Self {
                functions,
                choice,
                after_tool_result: false,
            }),
        }
    }

    /// The function the model calls, if it calls one: always with
    /// `required` or a name, with probability `rate` under `auto` (never
    /// right after a tool's result), never with `none` or without
    /// functions.
    pub fn choose(&self, rate: f64, rng: &mut fastrand::Rng) -> Option<&Function> {
        if self.functions.is_empty() {
            return None;
        }
        match &self.choice {
            ToolChoice::None => None,
            ToolChoice::Named(name) => self.functions.iter().find(|f| &f.name == name),
            ToolChoice::Required => self.functions.get(rng.usize(..self.functions.len())),
            // `rate` 0 draws nothing: requests without a rate keep their
            // sequence of draws (lengths, jitter) as before.
            ToolChoice::Auto if rate <= 0.0 || self.after_tool_result => None,
            ToolChoice::Auto => (rng.f64() < rate)
                .then(|| self.functions.get(rng.usize(..self.functions.len())))
                .flatten(),
        }
    }
}

/// Tool `i` of a request: a function to call, `None` for another type.
fn function(api: Api, tool: &Value, i: usize) -> Result<Option<Function>, OpenAiError> {
    let bad = |what: &str| invalid("tools", format!("Invalid 'tools[{i}]': {what}."));
    let Some(tool) = tool.as_object() else {
        return Err(bad("expected an object"));
    };
    match tool.get("type").and_then(Value::as_str) {
        Some("function") => {}
        Some(_) => return Ok(None),
        None => return Err(bad("missing 'type'")),
    }
    // Chat: {"type": "function", "function": {...}}; Responses: flat.
    let spec = match api {
        Api::Responses if !tool.contains_key("function") => tool,
        _ => tool
            .get("function")
            .and_then(Value::as_object)
            .ok_or_else(|| bad("missing 'function'"))?,
    };
    let name = spec
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| bad("missing the function's 'name'"))?;
    let parameters = spec
        .get("parameters")
        .cloned()
        .unwrap_or(Value::Object(Map::new()));
    Ok(Some(Function {
        name: name.to_owned(),
        parameters,
    }))
}

/// One call the model makes: its id, the function, the arguments' JSON
/// text, and where each of the text's tokens starts.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
    /// Byte offset of each token's first character (four characters a
    /// token), and the text's length last.
    bounds: Vec<usize>,
}

impl ToolCall {
    /// A call of `function` with arguments drawn to fit its schema.
    pub fn new(function: &Function, rng: &mut fastrand::Rng) -> Self {
        let arguments = arguments(&function.parameters, rng).to_string();
        let mut bounds: Vec<usize> = arguments
            .char_indices()
            .step_by(4)
            .map(|(at, _)| at)
            .collect();
        bounds.push(arguments.len());
        Self {
            id: format!("call_{:016x}{:08x}", rng.u64(..), rng.u32(..)),
            name: function.name.clone(),
            arguments,
            bounds,
        }
    }

    /// Tokens of the arguments.
    pub fn tokens(&self) -> u64 {
        self.bounds.len() as u64 - 1
    }

    /// The arguments' text of tokens `range` (clamped to the arguments).
    pub fn piece(&self, range: Range<u64>) -> &str {
        let last = self.bounds.len() - 1;
        let at = |token: u64| self.bounds[usize::try_from(token).unwrap_or(last).min(last)];
        &self.arguments[at(range.start)..at(range.end.max(range.start))]
    }
}

/// JSON that fits `schema` (the JSON Schema subset function parameters
/// use): `const`, then `enum` (one of its values), then the first of
/// `anyOf`/`oneOf`, then by `type`: an object with its `required`
/// properties (all of them when none is marked), arrays of `minItems`
/// items (at least one), strings of the model's words (`enum` aside),
/// integers and numbers within `minimum`/`maximum`, booleans. Anything
/// else, or nesting past 16, is `null`.
pub fn arguments(schema: &Value, rng: &mut fastrand::Rng) -> Value {
    value(schema, 0, rng)
}

fn value(schema: &Value, depth: u32, rng: &mut fastrand::Rng) -> Value {
    let Some(schema) = schema.as_object().filter(|_| depth <= MAX_DEPTH) else {
        return Value::Null;
    };
    if let Some(value) = schema.get("const") {
        return value.clone();
    }
    if let Some(Value::Array(options)) = schema.get("enum") {
        if !options.is_empty() {
            return options[rng.usize(..options.len())].clone();
        }
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(first) = schema
            .get(key)
            .and_then(Value::as_array)
            .and_then(|a| a.first())
        {
            return value(first, depth + 1, rng);
        }
    }
    let kind = match schema.get("type") {
        Some(Value::String(kind)) => kind.as_str(),
        // ["string", "null"]: the first that is not null.
        Some(Value::Array(kinds)) => kinds
            .iter()
            .filter_map(Value::as_str)
            .find(|k| *k != "null")
            .unwrap_or("null"),
        _ if schema.contains_key("properties") => "object",
        _ => "null",
    };
    let bound = |key: &str| {
        schema
            .get(key)
            .and_then(Value::as_f64)
            .filter(|v| v.is_finite())
    };
    match kind {
        "object" => {
            let mut out = Map::new();
            if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                let required: Vec<&str> = schema
                    .get("required")
                    .and_then(Value::as_array)
                    .map(|r| r.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                for (name, property) in properties {
                    if required.is_empty() || required.contains(&name.as_str()) {
                        out.insert(name.clone(), value(property, depth + 1, rng));
                    }
                }
            }
            Value::Object(out)
        }
        "array" => {
            let items = schema.get("items").unwrap_or(&Value::Null);
            let n = schema
                .get("minItems")
                .and_then(Value::as_u64)
                .unwrap_or(1)
                .clamp(1, 8);
            Value::Array((0..n).map(|_| value(items, depth + 1, rng)).collect())
        }
        "string" => {
            let n = rng.usize(1..=3);
            let words: Vec<&str> = (0..n).map(|_| WORDS[rng.usize(..WORDS.len())]).collect();
            Value::String(words.join(" "))
        }
        "integer" => {
            let lo = bound("minimum").map_or(1, |v| v.ceil() as i64);
            let hi = bound("maximum").map_or(lo.saturating_add(99), |v| v.floor() as i64);
            Value::from(if lo <= hi { rng.i64(lo..=hi) } else { lo })
        }
        "number" => {
            let lo = bound("minimum").unwrap_or(0.0);
            let hi = bound("maximum").unwrap_or(lo + 100.0).max(lo);
            // Two decimals, within the bounds.
            let v = ((lo + rng.f64() * (hi - lo)) * 100.0).round() / 100.0;
            serde_json::Number::from_f64(v.clamp(lo, hi)).map_or(Value::Null, Value::Number)
        }
        "boolean" => Value::Bool(rng.bool()),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(api: Api, tools: Value, choice: Option<Value>) -> Result<Tools, OpenAiError> {
        Tools::parse(api, Some(&tools), choice.as_ref())
    }

    fn weather() -> Value {
        json!([{"type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]},
                           "days": {"type": "integer", "minimum": 1, "maximum": 7}},
            "required": ["city", "unit", "days"]}}},
            {"type": "function", "function": {"name": "now"}},
            {"type": "web_search"}])
    }

    #[test]
    fn tools_and_choices_parse_in_both_apis_shapes() {
        let chat = parse(Api::Chat, weather(), None).unwrap_or_else(|e| panic!("{e:?}"));
        let names: Vec<&str> = chat.functions.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            ["get_weather", "now"],
            "other tool types are not functions"
        );
        assert_eq!(chat.choice, ToolChoice::Auto);
        assert_eq!(chat.functions[1].parameters, json!({}));
        let responses = parse(
            Api::Responses,
            json!([{"type": "function", "name": "lookup", "parameters": {"type": "object"}}]),
            Some(json!({"type": "function", "name": "lookup"})),
        );
        assert_eq!(
            responses.map(|t| t.choice),
            Ok(ToolChoice::Named("lookup".to_owned()))
        );
        let named = parse(
            Api::Chat,
            weather(),
            Some(json!({"type": "function", "function": {"name": "now"}})),
        );
        assert_eq!(
            named.map(|t| t.choice),
            Ok(ToolChoice::Named("now".to_owned()))
        );
        for (choice, expected) in [
            ("none", ToolChoice::None),
            ("auto", ToolChoice::Auto),
            ("required", ToolChoice::Required),
        ] {
            assert_eq!(
                parse(Api::Chat, weather(), Some(json!(choice))).map(|t| t.choice),
                Ok(expected)
            );
        }
        assert_eq!(Tools::parse(Api::Chat, None, None), Ok(Tools::default()));
    }

    #[test]
    fn bad_tools_and_choices_are_400_naming_the_parameter() {
        let param = |api, tools: Value, choice: Option<Value>| {
            parse(api, tools, choice).err().map(|e| (e.status, e.param))
        };
        let cases = [
            (json!({"type": "function"}), None, "tools"),
            (json!([{"function": {"name": "x"}}]), None, "tools"),
            (json!([{"type": "function"}]), None, "tools"),
            (
                json!([{"type": "function", "function": {"name": ""}}]),
                None,
                "tools",
            ),
            (json!([7]), None, "tools"),
            (weather(), Some(json!("sometimes")), "tool_choice"),
            (weather(), Some(json!(3)), "tool_choice"),
            (
                weather(),
                Some(json!({"type": "function", "function": {"name": "nope"}})),
                "tool_choice",
            ),
            (weather(), Some(json!({"type": "tool"})), "tool_choice"),
            (json!([]), Some(json!("required")), "tool_choice"),
            (
                json!([{"type": "web_search"}]),
                Some(json!("required")),
                "tool_choice",
            ),
        ];
        for (tools, choice, expected) in cases {
            assert_eq!(
                param(Api::Chat, tools.clone(), choice.clone()),
                Some((400, Some(expected))),
                "{tools} {choice:?}"
            );
        }
        // "none" and "auto" need no functions.
        assert!(parse(Api::Chat, json!([]), Some(json!("none"))).is_ok());
    }

    #[test]
    fn the_choice_decides_whether_a_call_is_made() {
        let tools = |choice| Tools {
            choice,
            ..parse(Api::Chat, weather(), None).unwrap_or_default()
        };
        let mut rng = fastrand::Rng::with_seed(7);
        let calls = |t: &Tools, rate, rng: &mut fastrand::Rng| {
            (0..1000).filter(|_| t.choose(rate, rng).is_some()).count()
        };
        assert_eq!(calls(&tools(ToolChoice::None), 1.0, &mut rng), 0);
        assert_eq!(calls(&tools(ToolChoice::Required), 0.0, &mut rng), 1000);
        assert_eq!(calls(&tools(ToolChoice::Auto), 0.0, &mut rng), 0);
        assert_eq!(calls(&tools(ToolChoice::Auto), 1.0, &mut rng), 1000);
        let some = calls(&tools(ToolChoice::Auto), 0.3, &mut rng);
        assert!((240..=360).contains(&some), "{some} of 1000 at 0.3");
        let named = tools(ToolChoice::Named("now".to_owned()));
        assert!((0..100).all(|_| named.choose(0.0, &mut rng).is_some_and(|f| f.name == "now")));
        // Required draws among the functions, each now and then.
        let required = tools(ToolChoice::Required);
        let weather_calls = (0..1000)
            .filter(|_| {
                required
                    .choose(0.0, &mut rng)
                    .is_some_and(|f| f.name == "get_weather")
            })
            .count();
        assert!((400..=600).contains(&weather_calls), "{weather_calls}");
        assert_eq!(
            Tools::default().choose(1.0, &mut rng),
            None,
            "no functions, no call"
        );
    }

    #[test]
    fn arguments_fit_the_schema() {
        let mut rng = fastrand::Rng::with_seed(1);
        let schema = json!({
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"enum": ["c", "f"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
                "ratio": {"type": "number", "minimum": 0.5, "maximum": 0.75},
                "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
                "where": {"type": "object", "properties": {"lat": {"type": "number"}}},
                "kind": {"const": "fixed"},
                "maybe": {"type": ["null", "boolean"]},
                "either": {"anyOf": [{"type": "integer", "minimum": 5, "maximum": 5}, {"type": "string"}]},
                "optional": {"type": "string"}
            },
            "required": ["city", "unit", "days", "ratio", "tags", "where", "kind", "maybe", "either"]
        });
        for _ in 0..200 {
            let a = arguments(&schema, &mut rng);
            assert!(a["city"].as_str().is_some_and(|s| !s.is_empty()), "{a}");
            assert!(a["unit"] == "c" || a["unit"] == "f", "{a}");
            assert!(
                a["days"].as_i64().is_some_and(|d| (1..=7).contains(&d)),
                "{a}"
            );
            assert!(
                a["ratio"]
                    .as_f64()
                    .is_some_and(|r| (0.5..=0.75).contains(&r)),
                "{a}"
            );
            assert_eq!(a["tags"].as_array().map(Vec::len), Some(2), "{a}");
            assert!(a["where"]["lat"].is_number(), "{a}");
            assert_eq!((&a["kind"], &a["either"]), (&json!("fixed"), &json!(5)));
            assert!(a["maybe"].is_boolean(), "{a}");
            assert!(
                a.get("optional").is_none(),
                "only the required properties: {a}"
            );
        }
        // Without `required`, every property; no schema, an empty object.
        let all = arguments(
            &json!({"properties": {"a": {"type": "boolean"}, "b": {"type": "string"}}}),
            &mut rng,
        );
        assert_eq!(all.as_object().map(Map::len), Some(2));
        assert_eq!(arguments(&json!({}), &mut rng), Value::Null);
        assert_eq!(arguments(&json!({"type": "object"}), &mut rng), json!({}));
        // A schema nested past the limit ends in null, not a stack overflow.
        let mut deep = json!({"type": "string"});
        for _ in 0..100 {
            deep = json!({"type": "object", "properties": {"x": deep}});
        }
        let mut out = &arguments(&deep, &mut rng);
        let mut depth = 0;
        while let Some(inner) = out.get("x") {
            out = inner;
            depth += 1;
        }
        assert_eq!((depth, out), (MAX_DEPTH + 1, &Value::Null));
    }

    #[test]
    fn a_calls_text_is_cut_into_tokens_of_four_characters() {
        let function = Function {
            name: "f".to_owned(),
            parameters: json!({"type": "object", "properties": {"é": {"const": "ünïcode"}}}),
        };
        let call = ToolCall::new(&function, &mut fastrand::Rng::with_seed(3));
        assert_eq!(call.arguments, r#"{"é":"ünïcode"}"#);
        assert!(
            call.id.starts_with("call_") && call.id.len() == 29,
            "{}",
            call.id
        );
        // 15 characters: 4 tokens, as the tokenizer counts the same text.
        assert_eq!(call.tokens(), 4);
        assert_eq!(
            call.tokens(),
            super::super::model::approximate_tokens(&call.arguments)
        );
        let pieces: Vec<&str> = (0..call.tokens()).map(|t| call.piece(t..t + 1)).collect();
        assert_eq!(pieces, [r#"{"é""#, r#":"ün"#, "ïcod", r#"e"}"#]);
        assert_eq!(call.piece(0..100), call.arguments, "clamped at the end");
        assert_eq!(call.piece(5..9), "");
        let (start, end) = (2, 1);
        assert_eq!(call.piece(start..end), "", "a reversed range is empty");
    }
}
