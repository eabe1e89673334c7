// The PostgreSQL JDBC driver through mandate: the conformance scenario as a
// normalized transcript. Connection settings come from PG* variables.
import java.math.BigDecimal;
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;

public class Client {
    static final String RELATIONS = "SELECT n.nspname, c.relname, c.relkind"
        + " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        + " WHERE c.relkind IN ('r', 'p', 'v', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
        + " ORDER BY 1, 2";

    // DBeaver's connection-time catalog reads (PostgreSchema/PostgreDatabase).
    static final String DBEAVER_SCHEMAS = "SELECT n.oid,n.*,d.description FROM pg_catalog.pg_namespace n"
        + " LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=n.oid AND d.objsubid=0 AND d.classoid='pg_namespace'::regclass"
        + " ORDER BY nspname";
    static final String DBEAVER_TABLES = "SELECT c.oid,c.*,d.description,pg_catalog.pg_get_expr(c.relpartbound, c.oid) as partition_expr,"
        + " pg_catalog.pg_get_partkeydef(c.oid) as partition_key FROM pg_catalog.pg_class c"
        + " LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=c.oid AND d.objsubid=0 AND d.classoid='pg_class'::regclass"
        + " WHERE c.relnamespace=? AND c.relkind not in ('i','I','c') ORDER BY c.relname";

    static void out(String label, Object value) {
        System.out.println(label + ": " + value);
    }

    interface Step {
        Object run() throws SQLException;
    }

    // step prints a step's result, or its error, and goes on.
    static void step(String label, Step s) {
        try {
            out(label, s.run());
        } catch (SQLException e) {
            out(label, "error " + e.getSQLState() + " " + e.getMessage().replace('\n', ' '));
        }
    }

    static String rows(ResultSet rs) throws SQLException {
        List<String> out = new ArrayList<>();
        int n = rs.getMetaData().getColumnCount();
        while (rs.next()) {
            List<String> cols = new ArrayList<>();
            for (int i = 1; i <= n; i++) {
                cols.add(rs.getString(i));
            }
            out.add(String.join(" ", cols));
        }
        return String.join(", ", out);
    }

    static String query(Connection c, String sql) throws SQLException {
        try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery(sql)) {
            return rows(rs);
        }
    }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://" + System.getenv("PGHOST") + ":" + System.getenv("PGPORT") + "/" + System.getenv("PGDATABASE");
        Properties props = new Properties();
        props.setProperty("user", System.getenv("PGUSER"));
        if (System.getenv("PGPASSWORD") != null) {
            props.setProperty("password", System.getenv("PGPASSWORD"));
        }
        props.setProperty("sslmode", "disable");
        props.setProperty("prepareThreshold", "1"); // named server-side statements from the first use
        try (Connection c = DriverManager.getConnection(url, props)) {
            out("accounts", query(c, "SELECT id, balance FROM accounts ORDER BY id"));
            try (PreparedStatement ps = c.prepareStatement("SELECT count(*) FROM transactions WHERE amount > ?")) {
                for (BigDecimal min : new BigDecimal[] {BigDecimal.ZERO, BigDecimal.ZERO, new BigDecimal(-1000)}) {
                    ps.setBigDecimal(1, min);
                    try (ResultSet rs = ps.executeQuery()) {
                        out(min.signum() == 0 ? "params" : "params (> -1000)", rows(rs));
                    }
                }
            }
            try {
                query(c, "SELECT * FROM pg_stats");
                out("refused", "no error");
            } catch (SQLException e) {
                out("refused", e.getSQLState());
            }
            out("after refusal", query(c, "SELECT count(*) FROM accounts"));
            out("version", query(c, "SELECT version()"));
            out("search_path", query(c, "SHOW search_path"));
            out("server_version_num", query(c, "SELECT current_setting('server_version_num')"));
            try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery(RELATIONS)) {
                List<String> rels = new ArrayList<>();
                while (rs.next()) {
                    rels.add(rs.getString(1) + "." + rs.getString(2) + " " + rs.getString(3));
                }
                out("relations", String.join(", ", rels));
            }

            // JDBC-specific: DatabaseMetaData, as IDEs and ORMs call it.
            DatabaseMetaData md = c.getMetaData();
            step("getDatabaseProductName", md::getDatabaseProductName);
            step("getDatabaseProductVersion", md::getDatabaseProductVersion);
            step("getTables", () -> {
                List<String> tables = new ArrayList<>();
                try (ResultSet rs = md.getTables(null, "public", "%", new String[] {"TABLE"})) {
                    while (rs.next()) {
                        tables.add(rs.getString("TABLE_SCHEM") + "." + rs.getString("TABLE_NAME"));
                    }
                }
                return String.join(", ", tables);
            });
            step("getColumns(accounts)", () -> {
                List<String> cols = new ArrayList<>();
                try (ResultSet rs = md.getColumns(null, "public", "accounts", "%")) {
                    while (rs.next()) {
                        cols.add(rs.getString("COLUMN_NAME") + " " + rs.getString("TYPE_NAME")
                            + (rs.getInt("NULLABLE") == DatabaseMetaData.columnNoNulls ? " not null" : ""));
                    }
                }
                return String.join(", ", cols);
            });
            step("getPrimaryKeys(accounts)", () -> {
                List<String> pk = new ArrayList<>();
                try (ResultSet rs = md.getPrimaryKeys(null, "public", "accounts")) {
                    while (rs.next()) {
                        pk.add(rs.getString("COLUMN_NAME"));
                    }
                }
                return String.join(", ", pk);
            });
            step("getImportedKeys(accounts)", () -> {
                List<String> fk = new ArrayList<>();
                try (ResultSet rs = md.getImportedKeys(null, "public", "accounts")) {
                    while (rs.next()) {
                        fk.add(rs.getString("FKCOLUMN_NAME") + " -> " + rs.getString("PKTABLE_NAME") + "." + rs.getString("PKCOLUMN_NAME"));
                    }
                }
                return String.join(", ", fk);
            });
            step("dbeaver schemas", () -> {
                List<String> names = new ArrayList<>();
                try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery(DBEAVER_SCHEMAS)) {
                    while (rs.next()) {
                        names.add(rs.getString("nspname"));
                    }
                }
                return String.join(", ", names);
            });
            step("dbeaver tables", () -> {
                List<String> names = new ArrayList<>();
                try (PreparedStatement ps = c.prepareStatement(DBEAVER_TABLES)) {
                    ps.setLong(1, Long.parseLong(query(c, "SELECT 'public'::regnamespace::oid")));
                    try (ResultSet rs = ps.executeQuery()) {
                        while (rs.next()) {
                            names.add(rs.getString("relname") + " " + rs.getString("relkind"));
                        }
                    }
                }
                return String.join(", ", names);
            });
            // An error inside a transaction aborts it, as PostgreSQL's would.
            c.setAutoCommit(false);
            try {
                query(c, "SELECT * FROM pg_stats");
            } catch (SQLException e) {
                out("refused in transaction", e.getSQLState());
            }
            try {
                query(c, "SELECT 1");
                out("after refusal in transaction", "ok");
            } catch (SQLException e) {
                out("after refusal in transaction", e.getSQLState());
            }
            c.rollback();
            out("after rollback", query(c, "SELECT count(*) FROM accounts"));
        }
    }
}
