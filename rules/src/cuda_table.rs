//! The CUDA toolkit to minimum driver table, as data.
//!
//! The rows live in `rules/data/cuda-drivers.txt` (format described at the top
//! of that file), embedded at build time with `include_str!`. An administrator
//! can extend or correct it without a rebuild: the caller reads the drop-in
//! file and hands its text to [`CudaTable::extend_from_str`]; `rules` reads no
//! file itself. v1's lesson ("tables as code" broke with every Docker release)
//! is why this is data.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::version::Version;

/// The built-in table text.
pub const BUILTIN_TABLE: &str = include_str!("../data/cuda-drivers.txt");

/// One `toolkit` or `prerelease` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolkitRow {
    /// The CUDA toolkit version, `major.minor[.patch]` as the notes write it.
    pub cuda: Version,
    /// The minimum driver (`>=`).
    pub min_driver: Version,
    /// Free text: `GA`, `Update 1`, `11.0.1 RC`.
    pub release: String,
    /// A release candidate: never used as the minimum.
    pub prerelease: bool,
}

/// One `compat` record: minor-version compatibility of a CUDA major family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompatFamily {
    /// The CUDA major version (`12` for 12.x).
    pub cuda_major: u64,
    /// Drivers from this one on run any `major.y` application (limited features).
    pub min_driver: Version,
}

/// What is wrong with a table line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableProblem {
    /// The first word is not `toolkit`, `prerelease` or `compat`.
    UnknownKind(String),
    /// A field is missing.
    MissingField(&'static str),
    /// A field that should be a version is not one.
    BadVersion {
        /// The field's name.
        field: &'static str,
        /// What the line had.
        value: String,
    },
    /// A `compat` line has more fields than it should.
    TrailingText(String),
}

impl fmt::Display for TableProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TableProblem::UnknownKind(k) => {
                write!(
                    f,
                    "unknown record {k:?} (expected toolkit, prerelease or compat)"
                )
            }
            TableProblem::MissingField(field) => write!(f, "missing <{field}>"),
            TableProblem::BadVersion { field, value } => {
                write!(f, "<{field}> {value:?} is not a version")
            }
            TableProblem::TrailingText(t) => write!(f, "unexpected text {t:?} after <max-driver>"),
        }
    }
}

/// A table line that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin} line {line}: {problem}: {text:?}")]
pub struct TableError {
    /// Where the text came from (a file name, or `built-in`).
    pub origin: String,
    /// The 1-based line number.
    pub line: usize,
    /// The line as written.
    pub text: String,
    /// What is wrong with it.
    pub problem: TableProblem,
}

/// The CUDA to driver table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CudaTable {
    rows: Vec<ToolkitRow>,
    compat: Vec<CompatFamily>,
}

enum Record {
    Toolkit(ToolkitRow),
    Compat(CompatFamily),
}

fn version_field(field: &'static str, value: Option<&str>) -> Result<Version, TableProblem> {
    let value = value.ok_or(TableProblem::MissingField(field))?;
    Version::parse(value).map_err(|_| TableProblem::BadVersion {
        field,
        value: value.to_owned(),
    })
}

fn parse_line(content: &str) -> Result<Record, TableProblem> {
    let mut words = content.split_whitespace();
    let kind = words.next().unwrap_or_default();
    match kind {
        "toolkit" | "prerelease" => {
            let cuda = version_field("cuda", words.next())?;
            let min_driver = version_field("min-driver", words.next())?;
            let release = words.collect::<Vec<_>>().join(" ");
            if release.is_empty() {
                return Err(TableProblem::MissingField("release"));
            }
            Ok(Record::Toolkit(ToolkitRow {
                cuda,
                min_driver,
                release,
                prerelease: kind == "prerelease",
            }))
        }
        "compat" => {
            let major = version_field("major", words.next())?;
            if major.as_str().contains('.') {
                return Err(TableProblem::BadVersion {
                    field: "major",
                    value: major.to_string(),
                });
            }
            let min_driver = version_field("min-driver", words.next())?;
            // The first driver outside the scheme: checked, not used (no
            // rule depends on it).
            match words.next() {
                None => return Err(TableProblem::MissingField("max-driver")),
                Some("-") => {}
                Some(v) => {
                    version_field("max-driver", Some(v))?;
                }
            }
            if let Some(extra) = words.next() {
                return Err(TableProblem::TrailingText(extra.to_owned()));
            }
            Ok(Record::Compat(CompatFamily {
                cuda_major: major.major(),
                min_driver,
            }))
        }
        other => Err(TableProblem::UnknownKind(other.to_owned())),
    }
}

impl CudaTable {
    /// An empty table.
    pub fn empty() -> CudaTable {
        CudaTable {
            rows: Vec::new(),
            compat: Vec::new(),
        }
    }

    /// The built-in table (`rules/data/cuda-drivers.txt`).
    pub fn builtin() -> CudaTable {
        let mut table = CudaTable::empty();
        // The embedded data is checked by the unit tests; a bad line is a
        // build defect, not a runtime condition.
        #[allow(clippy::expect_used)]
        table
            .extend_from_str(BUILTIN_TABLE, "built-in")
            .expect("built-in CUDA table is valid");
        table
    }

    /// Adds the records of `text` (same format as the built-in file), which
    /// came from `origin` (named in errors). A record for the same CUDA
    /// version and release, or the same compat family, replaces the earlier
    /// one. Nothing is changed if any line is bad.
    pub fn extend_from_str(&mut self, text: &str, origin: &str) -> Result<(), TableError> {
        let mut records = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let content = raw.split('#').next().unwrap_or_default().trim();
            if content.is_empty() {
                continue;
            }
            let record = parse_line(content).map_err(|problem| TableError {
                origin: origin.to_owned(),
                line: i + 1,
                text: raw.to_owned(),
                problem,
            })?;
            records.push(record);
        }
        for record in records {
            match record {
                Record::Toolkit(row) => {
                    if let Some(old) = self.rows.iter_mut().find(|r| {
                        r.cuda == row.cuda
                            && r.release == row.release
                            && r.prerelease == row.prerelease
                    }) {
                        *old = row;
                    } else {
                        self.rows.push(row);
                    }
                }
                Record::Compat(family) => {
                    if let Some(old) = self
                        .compat
                        .iter_mut()
                        .find(|c| c.cuda_major == family.cuda_major)
                    {
                        *old = family;
                    } else {
                        self.compat.push(family);
                    }
                }
            }
        }
        Ok(())
    }

    /// Every toolkit and prerelease record, in file order.
    pub fn rows(&self) -> &[ToolkitRow] {
        &self.rows
    }

    /// The minimum driver for the full CUDA `major.minor` toolkit (the patch
    /// part of `cuda` is ignored): the lowest driver among released records
    /// for that `major.minor`. `None` when the table has no such release.
    pub fn min_driver(&self, cuda: &Version) -> Option<&Version> {
        self.rows
            .iter()
            .filter(|r| {
                !r.prerelease && r.cuda.major() == cuda.major() && r.cuda.minor() == cuda.minor()
            })
            .map(|r| &r.min_driver)
            .min()
    }

    /// The minor-version compatibility record of `cuda`'s major family.
    pub fn compat_family(&self, cuda: &Version) -> Option<&CompatFamily> {
        self.compat.iter().find(|c| c.cuda_major == cuda.major())
    }

    /// The lowest driver that runs a CUDA `major.minor` application under
    /// minor-version compatibility (limited feature set); `None` for families
    /// without it (10.x and older).
    pub fn min_driver_minor_compat(&self, cuda: &Version) -> Option<&Version> {
        self.compat_family(cuda).map(|c| &c.min_driver)
    }

    /// The newest CUDA `major.minor` whose full toolkit this driver supports.
    pub fn newest_cuda(&self, driver: &Version) -> Option<Version> {
        self.rows
            .iter()
            .filter(|r| !r.prerelease && &r.min_driver <= driver)
            .map(|r| r.cuda.to_major_minor())
            .max()
    }
}

impl Default for CudaTable {
    fn default() -> Self {
        CudaTable::builtin()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    /// Every row of docs/cuda.md §1.1, as (cuda, release, driver).
    const ROWS: &[(&str, &str, &str)] = &[
        ("13.3", "Update 1", "610.43.02"),
        ("13.3", "GA", "610.43.02"),
        ("13.2", "Update 1", "595.58.03"),
        ("13.2", "GA", "595.45.04"),
        ("13.1", "Update 1", "590.48.01"),
        ("13.1", "GA", "590.44.01"),
        ("13.0", "Update 2", "580.95.05"),
        ("13.0", "Update 1", "580.82.07"),
        ("13.0", "GA", "580.65.06"),
        ("12.9", "Update 1", "575.57.08"),
        ("12.9", "GA", "575.51.03"),
        ("12.8", "Update 1", "570.124.06"),
        ("12.8", "GA", "570.26"),
        ("12.6", "Update 3", "560.35.05"),
        ("12.6", "Update 1/Update 2", "560.35.03"),
        ("12.6", "GA", "560.28.03"),
        ("12.5", "Update 1", "555.42.06"),
        ("12.5", "GA", "555.42.02"),
        ("12.4", "Update 1", "550.54.15"),
        ("12.4", "GA", "550.54.14"),
        ("12.3", "Update 1", "545.23.08"),
        ("12.3", "GA", "545.23.06"),
        ("12.2", "Update 2", "535.104.05"),
        ("12.2", "Update 1", "535.86.09"),
        ("12.2", "GA", "535.54.03"),
        ("12.1", "GA/Update 1", "530.30.02"),
        ("12.0", "Update 1", "525.85.12"),
        ("12.0", "GA", "525.60.13"),
        ("11.8", "GA", "520.61.05"),
        ("11.7", "Update 1", "515.48.07"),
        ("11.7", "GA", "515.43.04"),
        ("11.6", "Update 1/Update 2", "510.47.03"),
        ("11.6", "GA", "510.39.01"),
        ("11.5", "GA/Update 1/Update 2", "495.29.05"),
        ("11.4", "Update 3/Update 4", "470.82.01"),
        ("11.4", "Update 1/Update 2", "470.57.02"),
        ("11.4.0", "GA", "470.42.01"),
        ("11.3", "11.3.0/11.3.1", "465.19.01"),
        ("11.2.1", "11.2.1/11.2.2", "460.32.03"),
        ("11.2.0", "11.2.0", "460.27.03"),
        ("11.1.1", "11.1.1", "455.32"),
        ("11.1", "GA", "455.23"),
        ("11.0.3", "11.0.3", "450.51.06"),
        ("11.0.2", "11.0.2 GA", "450.51.05"),
        ("11.0.1", "11.0.1 RC", "450.36.06"),
        ("10.2.89", "10.2.89", "440.33"),
        ("10.1.105", "10.1.105 and updates", "418.39"),
        ("10.0.130", "10.0.130", "410.48"),
        ("9.2.148", "9.2.148", "396.37"),
        ("9.2.88", "9.2.88", "396.26"),
        ("9.1.85", "9.1.85", "390.46"),
        ("9.0.76", "9.0.76", "384.81"),
        ("8.0.61", "8.0.61 GA2", "375.26"),
        ("8.0.44", "8.0.44", "367.48"),
        ("7.5.16", "7.5.16", "352.31"),
        ("7.0.28", "7.0.28", "346.46"),
    ];

    #[test]
    fn builtin_has_every_row() {
        let t = CudaTable::builtin();
        assert_eq!(t.rows().len(), ROWS.len());
        for (cuda, release, driver) in ROWS {
            let row = t
                .rows()
                .iter()
                .find(|r| r.cuda.as_str() == *cuda && r.release == *release)
                .unwrap_or_else(|| panic!("missing row {cuda} {release}"));
            assert_eq!(row.min_driver.as_str(), *driver, "{cuda} {release}");
            assert_eq!(row.prerelease, release.contains("RC"), "{cuda} {release}");
        }
    }

    #[test]
    fn min_driver_per_major_minor() {
        let t = CudaTable::builtin();
        let expect = [
            ("13.3", "610.43.02"),
            ("13.2", "595.45.04"),
            ("13.1", "590.44.01"),
            ("13.0", "580.65.06"),
            ("12.9", "575.51.03"),
            ("12.8", "570.26"),
            ("12.6", "560.28.03"),
            ("12.5", "555.42.02"),
            ("12.4", "550.54.14"),
            ("12.3", "545.23.06"),
            ("12.2", "535.54.03"),
            ("12.1", "530.30.02"),
            ("12.0", "525.60.13"),
            ("11.8", "520.61.05"),
            ("11.7", "515.43.04"),
            ("11.6", "510.39.01"),
            ("11.5", "495.29.05"),
            ("11.4", "470.42.01"),
            ("11.3", "465.19.01"),
            ("11.2", "460.27.03"),
            ("11.1", "455.23"),
            ("11.0", "450.51.05"),
            ("10.2", "440.33"),
            ("10.1", "418.39"),
            ("10.0", "410.48"),
            ("9.2", "396.26"),
            ("9.1", "390.46"),
            ("9.0", "384.81"),
            ("8.0", "367.48"),
            ("7.5", "352.31"),
            ("7.0", "346.46"),
        ];
        for (cuda, driver) in expect {
            assert_eq!(
                t.min_driver(&v(cuda)).map(Version::as_str),
                Some(driver),
                "CUDA {cuda}"
            );
        }
        // Patch parts are ignored; 12.2.2 is a 12.2 toolkit.
        assert_eq!(t.min_driver(&v("12.2.2")).unwrap().as_str(), "535.54.03");
        assert_eq!(t.min_driver(&v("12")).unwrap().as_str(), "525.60.13");
        for missing in ["12.7", "13.4", "6.5", "14.0"] {
            assert_eq!(t.min_driver(&v(missing)), None, "CUDA {missing}");
        }
    }

    #[test]
    fn minor_compat_floors() {
        let t = CudaTable::builtin();
        assert_eq!(
            t.min_driver_minor_compat(&v("13.4")).unwrap().as_str(),
            "580.65.06"
        );
        assert_eq!(
            t.min_driver_minor_compat(&v("12.9")).unwrap().as_str(),
            "525.60.13"
        );
        assert_eq!(
            t.min_driver_minor_compat(&v("11.8")).unwrap().as_str(),
            "450.80.02"
        );
        assert_eq!(t.min_driver_minor_compat(&v("10.2")), None);
        assert_eq!(t.compat_family(&v("12.4")).unwrap().cuda_major, 12);
        assert_eq!(t.compat_family(&v("11.0")).unwrap().cuda_major, 11);
        assert_eq!(t.compat_family(&v("13.0")).unwrap().cuda_major, 13);
    }

    #[test]
    fn newest_cuda_for_driver() {
        let t = CudaTable::builtin();
        for (driver, cuda) in [
            ("535.104.05", Some("12.2")),
            ("535.54.03", Some("12.2")),
            ("535.54.02", Some("12.1")),
            ("570.26", Some("12.8")),
            ("575.51.03", Some("12.9")),
            ("580.65.06", Some("13.0")),
            ("610.43.02", Some("13.3")),
            ("999", Some("13.3")),
            ("450.51.05", Some("11.0")),
            ("450.36.06", Some("10.2")),
            ("346.46", Some("7.0")),
            ("340.1", None),
        ] {
            assert_eq!(
                t.newest_cuda(&v(driver)).as_ref().map(Version::as_str),
                cuda,
                "driver {driver}"
            );
        }
    }

    #[test]
    fn admin_file_extends_and_replaces() {
        let mut t = CudaTable::builtin();
        let admin = "# local additions\n\
                     toolkit 13.4 615.00 GA   # verified by ops\n\
                     toolkit 12.4 550.54.10 GA\n\
                     compat 14 650.1 -\n";
        t.extend_from_str(admin, "/etc/nvidia-container-runtime/cuda-drivers.txt")
            .unwrap();
        assert_eq!(t.min_driver(&v("13.4")).unwrap().as_str(), "615.00");
        assert_eq!(t.min_driver(&v("12.4")).unwrap().as_str(), "550.54.10");
        assert_eq!(
            t.min_driver_minor_compat(&v("14.1")).unwrap().as_str(),
            "650.1"
        );
        assert_eq!(t.rows().len(), ROWS.len() + 1);
    }

    #[test]
    fn admin_file_errors_name_the_line() {
        let mut t = CudaTable::builtin();
        let before = t.clone();
        let err = t
            .extend_from_str(
                "toolkit 13.4 615.00 GA\n\ntoolkit 13.5 six GA\n",
                "/etc/x.txt",
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "/etc/x.txt line 3: <min-driver> \"six\" is not a version: \"toolkit 13.5 six GA\""
        );
        assert_eq!(t, before, "a bad file changes nothing");
        let cases = [
            ("cuda 13.4 615 GA", "x line 1: unknown record \"cuda\" (expected toolkit, prerelease or compat): \"cuda 13.4 615 GA\""),
            ("toolkit 13.4", "x line 1: missing <min-driver>: \"toolkit 13.4\""),
            ("toolkit 13.4 615", "x line 1: missing <release>: \"toolkit 13.4 615\""),
            ("compat 13 580", "x line 1: missing <max-driver>: \"compat 13 580\""),
            ("compat 13.1 580 -", "x line 1: <major> \"13.1\" is not a version: \"compat 13.1 580 -\""),
            ("compat 13 580 - x", "x line 1: unexpected text \"x\" after <max-driver>: \"compat 13 580 - x\""),
        ];
        for (text, msg) in cases {
            assert_eq!(t.extend_from_str(text, "x").unwrap_err().to_string(), msg);
        }
    }

    proptest! {
        #[test]
        fn extend_never_panics(s in "(toolkit|compat|prerelease|#| |\t|\n|[0-9.]{1,6}|-|GA){0,20}") {
            let mut t = CudaTable::empty();
            let _ = t.extend_from_str(&s, "p");
        }

        #[test]
        fn extend_never_panics_arbitrary(s in ".{0,200}") {
            let mut t = CudaTable::empty();
            let _ = t.extend_from_str(&s, "p");
        }
    }
}
