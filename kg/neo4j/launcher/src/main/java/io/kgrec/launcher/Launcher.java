package io.kgrec.launcher;

import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

import org.neo4j.cli.ExecutionContext;
import org.neo4j.commandline.admin.security.SetInitialPasswordCommand;
import org.neo4j.io.fs.DefaultFileSystemAbstraction;
import picocli.CommandLine;

import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;

/**
 * Runs Neo4j Community embedded, with the Bolt connector on, until the process is told to stop.
 *
 * <p>Arguments: {@code --home DIR --port N [--address 127.0.0.1] [--auth true|false]
 * [--pagecache 1g] [--conf key=value ...]}. The password of the {@code neo4j} user comes from the
 * environment variable {@code KGREC_NEO4J_PASSWORD} (never the command line, which other users of
 * the machine can read). On a fresh home it is written to the auth store with Neo4j's own
 * {@code set-initial-password} before the database starts, so the built-in {@code neo4j/neo4j}
 * login never works, not even for the first seconds. Anonymous usage reporting is off. SIGTERM or
 * SIGINT run a shutdown hook that closes every database cleanly. One line
 * {@code KGREC_READY bolt://host:port} is printed once Bolt accepts connections.
 */
public final class Launcher {

    private Launcher() {}

    public static void main(String[] args) throws Exception {
        Map<String, String> opts = new HashMap<>();
        Map<String, String> raw = new HashMap<>();
        for (int i = 0; i < args.length; i++) {
            String key = args[i];
            if (!key.startsWith("--") || i + 1 >= args.length) {
                fail("bad argument: " + key);
            }
            String value = args[++i];
            if (key.equals("--conf")) {
                int eq = value.indexOf('=');
                if (eq <= 0) {
                    fail("--conf takes key=value, got: " + value);
                }
                raw.put(value.substring(0, eq), value.substring(eq + 1));
            } else {
                opts.put(key.substring(2), value);
            }
        }
        if (!opts.containsKey("home") || !opts.containsKey("port")) {
            fail("usage: Launcher --home DIR --port N [--address A] [--auth true|false] [--pagecache SIZE]");
        }
        Path home = Path.of(opts.get("home")).toAbsolutePath();
        int port = Integer.parseInt(opts.get("port"));
        String address = opts.getOrDefault("address", "127.0.0.1");
        boolean auth = Boolean.parseBoolean(opts.getOrDefault("auth", "true"));
        String password = System.getenv("KGREC_NEO4J_PASSWORD");
        if (auth && (password == null || password.isEmpty())) {
            fail("auth is on but KGREC_NEO4J_PASSWORD is not set");
        }

        raw.putIfAbsent("server.memory.pagecache.size", opts.getOrDefault("pagecache", "512m"));
        // Keep transaction logs small: this is an application database, not an audit trail.
        raw.putIfAbsent("db.tx_log.rotation.retention_policy", "2 files");
        // Strict config validation would reject the unknown settings of other Neo4j versions.
        raw.putIfAbsent("server.config.strict_validation.enabled", "false");
        // A local recommender holding shop data sends nothing anywhere.
        raw.putIfAbsent("dbms.usage_report.enabled", "false");
        // The address routing tables name (neo4j:// clients): where Bolt really listens, not
        // the default localhost:7687.
        raw.putIfAbsent("server.bolt.advertised_address", address + ":" + port);

        Files.createDirectories(home);
        if (auth && !Files.exists(home.resolve("data").resolve("databases").resolve("system"))) {
            setInitialPassword(home, password);  // before the first start: no default login
        }
        // The embedded builder takes raw settings only from a properties file: write ours there.
        Path conf = home.resolve("launcher.conf");
        StringBuilder text = new StringBuilder("# written by the kgrec launcher at every start\n");
        raw.forEach((k, v) -> text.append(k).append('=').append(v).append('\n'));
        Files.writeString(conf, text.toString());
        DatabaseManagementService dbms = new DatabaseManagementServiceBuilder(home)
                .loadPropertiesFromFile(conf)
                .setConfig(BoltConnector.enabled, true)
                .setConfig(BoltConnector.listen_address, new SocketAddress(address, port))
                .setConfig(GraphDatabaseSettings.auth_enabled, auth)
                .build();

        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            System.out.println("KGREC_STOPPING");
            System.out.flush();
            dbms.shutdown();
            stopped.countDown();
        }, "kgrec-shutdown"));

        if (auth) {
            setPassword(dbms, password);
        }
        System.out.println("KGREC_READY bolt://" + address + ":" + port);
        System.out.flush();
        stopped.await();
    }

    /** Neo4j's {@code neo4j-admin dbms set-initial-password}, run in this process. */
    private static void setInitialPassword(Path home, String password) {
        PrintStream quiet = new PrintStream(OutputStream.nullOutputStream());
        ExecutionContext context = new ExecutionContext(
                home, home.resolve("conf"), quiet, System.err, new DefaultFileSystemAbstraction());
        // "--" ends the options: a password starting with '-' (secrets.token_urlsafe gives
        // one in 64) is the password, not an unknown option (picocli's usage error, exit 64)
        int code = new CommandLine(new SetInitialPasswordCommand(context)).execute("--", password);
        if (code != 0) {
            fail("could not set the initial neo4j password (set-initial-password exit " + code + ")");
        }
    }

    private static void setPassword(DatabaseManagementService dbms, String password) {
        // A home made by an older launcher started with the built-in password: set ours (and a
        // password changed in NEO4J_PASSWORD since). Re-setting the same password is refused by
        // Neo4j; that refusal is harmless.
        try {
            dbms.database("system").executeTransactionally(
                    "ALTER USER neo4j SET PASSWORD $password CHANGE NOT REQUIRED",
                    Map.of("password", password));
        } catch (RuntimeException e) {
            String msg = String.valueOf(e.getMessage());
            if (!msg.contains("Old password and new password cannot be the same")) {
                dbms.shutdown();
                fail("could not set the neo4j password: " + msg);
            }
        }
    }

    private static void fail(String message) {
        System.err.println("KGREC_ERROR " + message);
        System.exit(2);
    }
}
