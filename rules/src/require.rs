//! The `NVIDIA_REQUIRE_*` language and the v1 label `com.nvidia.cuda.version`.
//!
//! Grammar (libnvidia-container `src/cli/dsl.c`, docs/toolkit.md §1):
//! within one variable, blank-separated terms are ORed and the comma-separated
//! factors of a term are ANDed; separate variables are ANDed. A factor is
//! `property op value`, `op` one of `= != < <= > >=`, the property (ASCII case
//! ignored) one of `cuda`, `driver`, `arch`, `brand`. Versions compare
//! numerically part by part; `brand` compares as a string, ignoring ASCII
//! case, with `=` and `!=` only.
//!
//! An unknown property is an error here, as in the C implementation (the Go
//! port skips it): a requirement we cannot check is refused loudly rather than
//! passed silently. Empty terms and factors are skipped, and an empty value
//! requires nothing.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::version::Version;

/// A property a condition tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Property {
    /// The CUDA version the driver supports (`major.minor`).
    Cuda,
    /// The driver (NVRM) version.
    Driver,
    /// The GPU's compute capability.
    Arch,
    /// The GPU's brand.
    Brand,
}

impl Property {
    /// The name in the language.
    pub fn as_str(self) -> &'static str {
        match self {
            Property::Cuda => "cuda",
            Property::Driver => "driver",
            Property::Arch => "arch",
            Property::Brand => "brand",
        }
    }

    fn from_name(name: &str) -> Option<Property> {
        [
            Property::Cuda,
            Property::Driver,
            Property::Arch,
            Property::Brand,
        ]
        .into_iter()
        .find(|p| p.as_str().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl Op {
    /// The operator's text.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }

    /// Applies the operator to an ordering of `host` against `wanted`.
    pub fn holds(self, ord: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Op::Eq => ord == Equal,
            Op::Ne => ord != Equal,
            Op::Lt => ord == Less,
            Op::Le => ord != Greater,
            Op::Gt => ord == Greater,
            Op::Ge => ord != Less,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A condition's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operand {
    /// For `cuda`, `driver`, `arch`.
    Version(Version),
    /// For `brand`.
    Brand(String),
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operand::Version(v) => v.fmt(f),
            Operand::Brand(b) => f.write_str(b),
        }
    }
}

/// One factor: `property op value`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    /// What is tested.
    pub property: Property,
    /// How.
    pub op: Op,
    /// Against what.
    pub value: Operand,
}

impl fmt::Display for Condition {
    /// `cuda>=12.4`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{}", self.property, self.op, self.value)
    }
}

/// What is wrong with an expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequireError {
    /// The property is not `cuda`, `driver`, `arch` or `brand`.
    #[error("unknown property {property:?} in {factor:?} (expected cuda, driver, arch or brand)")]
    UnknownProperty {
        /// The factor as written.
        factor: String,
        /// The property as written.
        property: String,
    },
    /// No operator.
    #[error("malformed condition {factor:?}: expected <property><op><value> with op one of = != < <= > >=")]
    NoOperator {
        /// The factor as written.
        factor: String,
    },
    /// The value is not a version.
    #[error("malformed condition {factor:?}: {value:?} is not a version")]
    BadVersion {
        /// The factor as written.
        factor: String,
        /// The value as written.
        value: String,
    },
    /// The brand value is empty or uses an ordering operator.
    #[error("malformed condition {factor:?}: brand takes = or != and a name")]
    BadBrand {
        /// The factor as written.
        factor: String,
    },
}

/// One `NVIDIA_REQUIRE_*` variable (or the legacy `CUDA_VERSION` rule),
/// parsed: an OR of ANDs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requirement {
    /// Where it came from: `NVIDIA_REQUIRE_CUDA`, or `CUDA_VERSION` for a
    /// legacy image.
    pub variable: String,
    /// The value as written.
    pub text: String,
    /// Alternatives (ORed), each a list of conditions (ANDed).
    pub alternatives: Vec<Vec<Condition>>,
}

const OPS: [(&str, Op); 6] = [
    ("!=", Op::Ne),
    ("<=", Op::Le),
    (">=", Op::Ge),
    ("=", Op::Eq),
    ("<", Op::Lt),
    (">", Op::Gt),
];

fn parse_factor(factor: &str) -> Result<Condition, RequireError> {
    let pos = factor
        .find(['=', '!', '<', '>'])
        .ok_or_else(|| RequireError::NoOperator {
            factor: factor.to_owned(),
        })?;
    let (name, rest) = factor.split_at(pos);
    let (op_text, op) = OPS
        .iter()
        .find(|(t, _)| rest.starts_with(t))
        .copied()
        .ok_or_else(|| RequireError::NoOperator {
            factor: factor.to_owned(),
        })?;
    let value = &rest[op_text.len()..];
    let property = Property::from_name(name).ok_or_else(|| {
        if name.is_empty() {
            RequireError::NoOperator {
                factor: factor.to_owned(),
            }
        } else {
            RequireError::UnknownProperty {
                factor: factor.to_owned(),
                property: name.to_owned(),
            }
        }
    })?;
    let value = match property {
        Property::Brand => {
            if !matches!(op, Op::Eq | Op::Ne)
                || value.is_empty()
                || value.contains(['=', '!', '<', '>'])
            {
                return Err(RequireError::BadBrand {
                    factor: factor.to_owned(),
                });
            }
            Operand::Brand(value.to_owned())
        }
        _ => Operand::Version(Version::parse(value).map_err(|_| RequireError::BadVersion {
            factor: factor.to_owned(),
            value: value.to_owned(),
        })?),
    };
    Ok(Condition {
        property,
        op,
        value,
    })
}

/// What the evaluator knows about the host and, when evaluating per GPU, the GPU.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The CUDA version (`None`: unknown; every `cuda` condition fails).
    pub cuda: Option<&'a Version>,
    /// The driver version.
    pub driver: &'a Version,
    /// The GPU's compute capability and brand; `None` when evaluating with no
    /// GPU, where `arch` and `brand` conditions pass.
    pub gpu: Option<(&'a Version, &'a str)>,
}

impl Condition {
    /// True when the condition holds.
    pub fn holds(&self, facts: &Facts<'_>) -> bool {
        match (&self.property, &self.value) {
            (Property::Cuda, Operand::Version(want)) => {
                facts.cuda.is_some_and(|c| self.op.holds(c.cmp(want)))
            }
            (Property::Driver, Operand::Version(want)) => self.op.holds(facts.driver.cmp(want)),
            (Property::Arch, Operand::Version(want)) => facts
                .gpu
                .map_or(true, |(arch, _)| self.op.holds(arch.cmp(want))),
            (Property::Brand, Operand::Brand(want)) => facts.gpu.map_or(true, |(_, brand)| {
                let same = brand.eq_ignore_ascii_case(want);
                if self.op == Op::Ne {
                    !same
                } else {
                    same
                }
            }),
            // Unreachable through `parse`; a mismatched hand-built condition fails.
            _ => false,
        }
    }
}

impl Requirement {
    /// Parses one variable's value.
    pub fn parse(variable: &str, text: &str) -> Result<Requirement, RequireError> {
        let mut alternatives = Vec::new();
        for term in text.split_whitespace() {
            let factors = term
                .split(',')
                .filter(|f| !f.is_empty())
                .map(parse_factor)
                .collect::<Result<Vec<_>, _>>()?;
            if !factors.is_empty() {
                alternatives.push(factors);
            }
        }
        Ok(Requirement {
            variable: variable.to_owned(),
            text: text.to_owned(),
            alternatives,
        })
    }

    /// The legacy rule: an image with `CUDA_VERSION` and no
    /// `NVIDIA_REQUIRE_CUDA` requires `cuda>=<major.minor>`.
    pub fn legacy_cuda(cuda_version: &Version) -> Requirement {
        let v = cuda_version.to_major_minor();
        Requirement {
            variable: "CUDA_VERSION".to_owned(),
            text: format!("cuda>={v}"),
            alternatives: vec![vec![Condition {
                property: Property::Cuda,
                op: Op::Ge,
                value: Operand::Version(v),
            }]],
        }
    }

    /// Evaluates; on failure returns the condition to report: the first
    /// failing factor of the first alternative (for NVIDIA's images that is
    /// the `cuda>=` term). An empty requirement holds.
    pub fn check(&self, facts: &Facts<'_>) -> Result<(), &Condition> {
        let mut first_failure = None;
        for alt in &self.alternatives {
            match alt.iter().find(|c| !c.holds(facts)) {
                None => return Ok(()),
                Some(c) => {
                    first_failure.get_or_insert(c);
                }
            }
        }
        first_failure.map_or(Ok(()), Err)
    }
}

/// `NVIDIA_DISABLE_REQUIRE`, read as Go's `strconv.ParseBool` (`1`, `t`,
/// `T`, `TRUE`, `true`, `True` are true). Anything else, including values
/// `ParseBool` rejects, is false, as in the toolkit (the error is ignored).
pub fn parse_disable_require(value: &str) -> bool {
    matches!(value, "1" | "t" | "T" | "TRUE" | "true" | "True")
}

/// Reads the v1 label `com.nvidia.cuda.version` as v1's `fmt.Sscanf("%d.%d")`:
/// `8.0.61` is 8.0, `8` is an error.
pub fn parse_v1_cuda_label(label: &str) -> Option<(u64, u64)> {
    fn int(s: &str) -> Option<(u64, &str)> {
        let s = s.strip_prefix('+').unwrap_or(s);
        let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        if end == 0 {
            return None;
        }
        Some((s[..end].parse().ok()?, &s[end..]))
    }
    let (major, rest) = int(label.trim_start())?;
    let rest = rest.strip_prefix('.')?;
    let (minor, _) = int(rest)?;
    Some((major, minor))
}

/// v1's `cudaSupported`: the image's label `major.minor` must not exceed the
/// driver's CUDA `major.minor`.
pub fn v1_cuda_supported(label: (u64, u64), driver_cuda: (u64, u64)) -> bool {
    let ((lmaj, lmin), (vmaj, vmin)) = (label, driver_cuda);
    !(lmaj > vmaj || (lmaj == vmaj && lmin > vmin))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    fn req(text: &str) -> Requirement {
        Requirement::parse("NVIDIA_REQUIRE_CUDA", text).unwrap()
    }

    #[test]
    fn parses_the_nvidia_image_requirement() {
        let r = req(
            "cuda>=12.2 brand=tesla,driver>=470,driver<471 brand=unknown,driver>=470,driver<471",
        );
        assert_eq!(r.alternatives.len(), 3);
        assert_eq!(r.alternatives[1].len(), 3);
        assert_eq!(r.alternatives[0][0].to_string(), "cuda>=12.2");
        assert_eq!(r.alternatives[1][0].to_string(), "brand=tesla");
        assert_eq!(r.alternatives[1][2].to_string(), "driver<471");
    }

    #[test]
    fn every_operator_and_property() {
        for (text, prop, op) in [
            ("cuda=12", Property::Cuda, Op::Eq),
            ("CUDA!=12", Property::Cuda, Op::Ne),
            ("driver<535", Property::Driver, Op::Lt),
            ("Driver<=535.104.05", Property::Driver, Op::Le),
            ("arch>8.0", Property::Arch, Op::Gt),
            ("ARCH>=7.5", Property::Arch, Op::Ge),
            ("brand=Tesla", Property::Brand, Op::Eq),
            ("brand!=geforce", Property::Brand, Op::Ne),
        ] {
            let c = &req(text).alternatives[0][0];
            assert_eq!((c.property, c.op), (prop, op), "{text}");
        }
    }

    #[test]
    fn parse_errors() {
        let err = |t: &str| Requirement::parse("NVIDIA_REQUIRE_X", t).unwrap_err();
        assert_eq!(
            err("foo>=1"),
            RequireError::UnknownProperty {
                factor: "foo>=1".into(),
                property: "foo".into()
            }
        );
        assert_eq!(
            err("cuda12"),
            RequireError::NoOperator {
                factor: "cuda12".into()
            }
        );
        assert_eq!(
            err(">=12"),
            RequireError::NoOperator {
                factor: ">=12".into()
            }
        );
        assert_eq!(
            err("cuda!12"),
            RequireError::NoOperator {
                factor: "cuda!12".into()
            }
        );
        assert_eq!(
            err("cuda>=twelve"),
            RequireError::BadVersion {
                factor: "cuda>=twelve".into(),
                value: "twelve".into()
            }
        );
        assert_eq!(
            err("cuda>>12"),
            RequireError::BadVersion {
                factor: "cuda>>12".into(),
                value: ">12".into()
            }
        );
        assert_eq!(
            err("cuda=="),
            RequireError::BadVersion {
                factor: "cuda==".into(),
                value: "=".into()
            }
        );
        assert_eq!(
            err("cuda>="),
            RequireError::BadVersion {
                factor: "cuda>=".into(),
                value: "".into()
            }
        );
        assert_eq!(
            err("brand>=tesla"),
            RequireError::BadBrand {
                factor: "brand>=tesla".into()
            }
        );
        assert_eq!(
            err("brand="),
            RequireError::BadBrand {
                factor: "brand=".into()
            }
        );
        assert_eq!(
            err("cuda>=x").to_string(),
            "malformed condition \"cuda>=x\": \"x\" is not a version"
        );
    }

    #[test]
    fn empty_parts_are_skipped() {
        assert!(req("").alternatives.is_empty());
        assert!(req("  \t ").alternatives.is_empty());
        assert_eq!(
            req("cuda>=12,,driver>=1, ").alternatives,
            req("cuda>=12,driver>=1").alternatives
        );
        let facts = Facts {
            cuda: None,
            driver: &v("1"),
            gpu: None,
        };
        assert!(req("").check(&facts).is_ok());
    }

    #[test]
    fn evaluation() {
        let (cuda, driver, arch) = (v("12.2"), v("535.104.05"), v("7.5"));
        let gpu = Facts {
            cuda: Some(&cuda),
            driver: &driver,
            gpu: Some((&arch, "Tesla")),
        };
        let no_gpu = Facts { gpu: None, ..gpu };
        let r = req("cuda>=12.4 brand=tesla,driver>=535,driver<536");
        assert!(r.check(&gpu).is_ok());
        assert!(r
            .check(&Facts {
                gpu: Some((&arch, "GeForce")),
                ..gpu
            })
            .is_err());
        assert!(r.check(&no_gpu).is_ok(), "brand passes with no GPU");
        assert_eq!(
            req("cuda>=12.4 driver>=600")
                .check(&gpu)
                .unwrap_err()
                .to_string(),
            "cuda>=12.4"
        );
        assert!(req("cuda>=12.2").check(&gpu).is_ok());
        assert!(req("cuda>=12.2.0").check(&gpu).is_ok());
        assert!(req("cuda=12.2.0").check(&gpu).is_ok());
        assert!(req("cuda>12.2").check(&gpu).is_err());
        assert!(req("driver>=535.104.5").check(&gpu).is_ok());
        assert!(req("driver>535.104").check(&gpu).is_ok());
        assert!(req("arch>=8.0").check(&gpu).is_err());
        assert!(req("arch>=8.0").check(&no_gpu).is_ok());
        assert!(req("brand!=TESLA").check(&gpu).is_err());
        assert!(req("brand=TESLA").check(&gpu).is_ok());
        let unknown_cuda = Facts { cuda: None, ..gpu };
        assert!(req("cuda>=1").check(&unknown_cuda).is_err());
        assert!(req("cuda<100").check(&unknown_cuda).is_err());
    }

    #[test]
    fn legacy_rule() {
        let r = Requirement::legacy_cuda(&v("12.2.2"));
        assert_eq!(r.variable, "CUDA_VERSION");
        assert_eq!(r.alternatives[0][0].to_string(), "cuda>=12.2");
        assert_eq!(r.text, "cuda>=12.2");
    }

    #[test]
    fn disable_require_values() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert!(parse_disable_require(t), "{t}");
        }
        for f in [
            "0", "f", "false", "False", "FALSE", "", "yes", "on", "tRuE", " true",
        ] {
            assert!(!parse_disable_require(f), "{f}");
        }
    }

    #[test]
    fn v1_label() {
        assert_eq!(parse_v1_cuda_label("8.0"), Some((8, 0)));
        assert_eq!(parse_v1_cuda_label("8.0.61"), Some((8, 0)));
        assert_eq!(parse_v1_cuda_label("10.1"), Some((10, 1)));
        assert_eq!(parse_v1_cuda_label("8"), None);
        assert_eq!(parse_v1_cuda_label("x"), None);
        assert_eq!(parse_v1_cuda_label(""), None);
        assert!(v1_cuda_supported((8, 0), (8, 0)));
        assert!(v1_cuda_supported((7, 5), (8, 0)));
        assert!(v1_cuda_supported((7, 9), (8, 0)));
        assert!(!v1_cuda_supported((9, 0), (8, 0)));
        assert!(!v1_cuda_supported((8, 1), (8, 0)));
    }

    // --- property test: the evaluator against a reference -----------------

    #[derive(Debug, Clone)]
    enum RefOperand {
        Ver(Vec<u64>),
        Brand(String),
    }

    #[derive(Debug, Clone)]
    struct RefCond {
        prop: &'static str,
        op: &'static str,
        value: RefOperand,
    }

    fn ref_cmp(a: &[u64], b: &[u64]) -> std::cmp::Ordering {
        let n = a.len().max(b.len());
        let get = |v: &[u64], i: usize| v.get(i).copied().unwrap_or(0);
        (0..n)
            .map(|i| get(a, i).cmp(&get(b, i)))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    }

    fn ref_op(op: &str, o: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match op {
            "=" => o == Equal,
            "!=" => o != Equal,
            "<" => o == Less,
            "<=" => o != Greater,
            ">" => o == Greater,
            _ => o != Less,
        }
    }

    struct RefHost {
        cuda: Option<Vec<u64>>,
        driver: Vec<u64>,
        gpu: Option<(Vec<u64>, String)>,
    }

    fn ref_holds(c: &RefCond, h: &RefHost) -> bool {
        match (&c.value, c.prop) {
            (RefOperand::Ver(want), "cuda") => h
                .cuda
                .as_ref()
                .map(|cu| ref_op(c.op, ref_cmp(cu, want)))
                .unwrap_or(false),
            (RefOperand::Ver(want), "driver") => ref_op(c.op, ref_cmp(&h.driver, want)),
            (RefOperand::Ver(want), _) => h
                .gpu
                .as_ref()
                .map(|(a, _)| ref_op(c.op, ref_cmp(a, want)))
                .unwrap_or(true),
            (RefOperand::Brand(want), _) => h
                .gpu
                .as_ref()
                .map(|(_, b)| (b.to_lowercase() == want.to_lowercase()) == (c.op == "="))
                .unwrap_or(true),
        }
    }

    fn render_ver(v: &[u64]) -> String {
        v.iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(".")
    }

    fn ver() -> impl Strategy<Value = Vec<u64>> {
        prop::collection::vec(0u64..4, 1..=3)
    }

    fn cond() -> impl Strategy<Value = RefCond> {
        let ops = prop::sample::select(vec!["=", "!=", "<", "<=", ">", ">="]);
        let props = prop::sample::select(vec!["cuda", "driver", "arch"]);
        let brands = prop::sample::select(vec!["tesla", "Tesla", "geforce", "NVIDIA"]);
        prop_oneof![
            (props, ops, ver()).prop_map(|(prop, op, v)| RefCond {
                prop,
                op,
                value: RefOperand::Ver(v)
            }),
            (prop::sample::select(vec!["=", "!="]), brands).prop_map(|(op, b)| RefCond {
                prop: "brand",
                op,
                value: RefOperand::Brand(b.to_string())
            }),
        ]
    }

    fn render_cond(c: &RefCond, upper: bool) -> String {
        let prop = if upper {
            c.prop.to_uppercase()
        } else {
            c.prop.to_string()
        };
        let value = match &c.value {
            RefOperand::Ver(v) => render_ver(v),
            RefOperand::Brand(b) => b.clone(),
        };
        format!("{prop}{}{value}", c.op)
    }

    proptest! {
        #[test]
        fn agrees_with_reference(
            vars in prop::collection::vec(prop::collection::vec(prop::collection::vec(cond(), 1..4), 0..4), 1..3),
            cuda in prop::option::of(ver()),
            driver in ver(),
            gpu in prop::option::of((ver(), prop::sample::select(vec!["Tesla", "GeForce"]))),
            upper in any::<bool>(),
        ) {
            let host = RefHost { cuda: cuda.clone(), driver: driver.clone(), gpu: gpu.clone().map(|(a, b)| (a, b.to_string())) };
            let expected = vars.iter().all(|alts| {
                alts.is_empty() || alts.iter().any(|f| f.iter().all(|c| ref_holds(c, &host)))
            });
            let cuda_v = cuda.map(|c| v(&render_ver(&c)));
            let driver_v = v(&render_ver(&driver));
            let arch_v = gpu.as_ref().map(|(a, _)| v(&render_ver(a)));
            let facts = Facts {
                cuda: cuda_v.as_ref(),
                driver: &driver_v,
                gpu: arch_v.as_ref().zip(gpu.as_ref().map(|(_, b)| *b)),
            };
            let mut got = true;
            for alts in &vars {
                let text = alts
                    .iter()
                    .map(|f| f.iter().map(|c| render_cond(c, upper)).collect::<Vec<_>>().join(","))
                    .collect::<Vec<_>>()
                    .join(" ");
                let r = Requirement::parse("NVIDIA_REQUIRE_X", &text).unwrap();
                got &= r.check(&facts).is_ok();
            }
            prop_assert_eq!(got, expected);
        }

        #[test]
        fn parse_never_panics(s in ".{0,60}") {
            let _ = Requirement::parse("NVIDIA_REQUIRE_X", &s);
            let _ = parse_v1_cuda_label(&s);
        }

        #[test]
        fn parse_never_panics_on_dsl_chars(s in "(cuda|driver|arch|brand|[<>=!,. ]|[0-9]|x){0,20}") {
            let _ = Requirement::parse("NVIDIA_REQUIRE_X", &s);
        }
    }
}
