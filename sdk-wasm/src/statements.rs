//! `statements!`: a module's SQL, declared once by name.
//!
//! Owns: the macro and the compile-time checks of what it declares (name
//! and SQL lengths, statement count). Must not: parse SQL; the host plans
//! every statement at deploy time and rejects the module if one fails.

/// Declares a module's statements: one `const NAME: Statement` each, with
/// `index` = its position (0, 1, 2, ...), plus `pub const STATEMENTS`, the
/// whole list in order, for `export!`. Use it once per Rust module.
///
/// ```
/// ohm_sdk::statements! {
///     /// Doc comments and attributes are kept.
///     pub GET = "SELECT v FROM kv WHERE k = ?";
///     PUT = "INSERT INTO kv (k, v) VALUES (?, ?)";
/// }
/// assert_eq!((GET.index, PUT.index, PUT.name), (0, 1, "PUT"));
/// assert_eq!(STATEMENTS, &[GET, PUT]);
/// ```
#[macro_export]
macro_rules! statements {
    ($($(#[$meta:meta])* $vis:vis $name:ident = $sql:expr;)*) => {
        /// Positions of the statements below, counted by the compiler.
        #[doc(hidden)]
        #[allow(non_camel_case_types, dead_code, clippy::upper_case_acronyms)]
        #[repr(u32)]
        enum __OhmStatementIndex {
            $($name,)*
            /// Keeps the enum inhabited when no statement is declared.
            __OHM_END,
        }

        $(
            $(#[$meta])*
            $vis const $name: $crate::Statement = $crate::Statement {
                index: __OhmStatementIndex::$name as u32,
                name: ::core::stringify!($name),
                sql: $sql,
            };
        )*

        /// Every statement of this module, in declaration order.
        pub const STATEMENTS: &[$crate::Statement] = &[$($name),*];

        const _: () = $crate::__private::check_statements(STATEMENTS);
    };
}

/// Fails the build (this runs in a `const`) if a statement list breaks a
/// bound the host enforces at deploy time.
#[doc(hidden)]
pub const fn check_statements(statements: &[crate::Statement]) {
    use crate::abi::{NAME_BYTES_MAX, SQL_BYTES_MAX, STATEMENTS_MAX};
    assert!(
        statements.len() <= STATEMENTS_MAX,
        "a module may declare at most abi::STATEMENTS_MAX (1024) statements"
    );
    let mut i = 0;
    while i < statements.len() {
        let s = &statements[i];
        assert!(
            s.name.len() <= NAME_BYTES_MAX,
            "a statement name is longer than abi::NAME_BYTES_MAX (64 bytes)"
        );
        assert!(
            s.sql.len() <= SQL_BYTES_MAX,
            "a statement's SQL is longer than abi::SQL_BYTES_MAX (64 KiB)"
        );
        assert!(!s.sql.is_empty(), "a statement's SQL is empty");
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    mod declared {
        crate::statements! {
            /// The first.
            pub FIRST = "SELECT 1";
            SECOND = concat!("SELECT ", "2");
            pub(crate) THIRD = "SELECT 3";
        }
    }

    #[test]
    fn indexes_follow_declaration_order() {
        use declared::*;
        assert_eq!(STATEMENTS.len(), 3);
        for (i, s) in STATEMENTS.iter().enumerate() {
            assert_eq!(s.index as usize, i);
        }
        assert_eq!((FIRST.name, FIRST.sql), ("FIRST", "SELECT 1"));
        assert_eq!((THIRD.index, STATEMENTS[1].sql), (2, "SELECT 2"));
    }

    mod none {
        crate::statements! {}
    }

    #[test]
    fn an_empty_list_is_allowed() {
        assert!(none::STATEMENTS.is_empty());
    }
}
