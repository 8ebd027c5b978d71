package goldenkey.devstack;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

import org.h2.mvstore.MVStore;
import org.h2.mvstore.RandomAccessStore;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import de.bwaldvogel.mongo.MongoBackend;
import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.backend.h2.H2Backend;
import de.bwaldvogel.mongo.backend.memory.MemoryBackend;
import de.bwaldvogel.mongo.backend.memory.MemoryDatabase;
import de.bwaldvogel.mongo.bson.Document;
import io.netty.channel.Channel;

/**
 * The native dev stack's MongoDB-protocol server: mongo-java-server on 127.0.0.1 only.
 *
 * <pre>
 * MongoLauncher PORT memory
 * MongoLauncher PORT h2 FILE [commit|fsync|background]
 * </pre>
 *
 * <p>It announces MongoDB 4.4 (wire version 9, {@link AnnouncedVersion}), answers {@code hello}
 * (mongo-java-server itself knows only the legacy {@code isMaster}), and names itself in
 * {@code buildInfo}: a sub-document {@code mongoJavaServer: {version, backend, durability}} that
 * MongoDB never sends.
 *
 * <p>H2 durability: {@code commit} (the default) opens the MVStore without auto-commit and commits
 * it after every command that may write, before the reply goes out, so an acknowledged write is in
 * the file (the OS's page cache) and survives {@code kill -9}; {@code fsync} also forces the file to
 * the disk after each such command, for power loss; {@code background} is the library's default,
 * MVStore's background commit about once a second, which loses up to the last second of
 * acknowledged writes to a {@code kill -9}. SIGTERM and SIGINT shut down cleanly in every mode:
 * connections closed, the store committed and closed.
 *
 * <p>The price of a commit per write, besides the time: every commit writes a new MVStore chunk
 * (copy-on-write pages), so the file grows by tens of kilobytes per write until dead chunks are
 * reused ({@link #RETENTION_MS}) and sparse ones compacted (the housekeeping below, which MVStore's
 * own background thread would do in the background mode); a clean shutdown compacts it fully.
 * docs/devstack.md has the measured figures.
 */
public final class MongoLauncher {

    private static final Logger log = LoggerFactory.getLogger(MongoLauncher.class);

    private static final String HOST = "127.0.0.1";

    /** How long the H2 store keeps dead chunks before reusing their space (commit and fsync modes). */
    static final int RETENTION_MS = 2_000;

    /** Housekeeping of the H2 store (commit and fsync modes): how often, down to what fill rate. */
    static final long HOUSEKEEPING_MS = 1_000;
    static final int TARGET_FILL_RATE = 50;
    static final int HOUSEKEEPING_WRITE_BYTES = 16 << 20;

    /**
     * On a clean shutdown the H2 store is compacted fully (MVStore.close(-1)): its live data copied
     * into a new file that then replaces the old one atomically, a fraction of a second for the dev
     * stack's data. Killed meanwhile, the old file stays. (A bounded compaction, close(2000), left
     * files larger than before.)
     */
    static final int CLOSE_COMPACTION_MS = -1;

    /** Commands that never change the store: no commit after them. Anything else commits. */
    private static final Set<String> READS = Set.of(
        "buildinfo", "collstats", "connectionstatus", "count", "dbstats", "distinct", "endsessions",
        "find", "getcmdlineopts", "getlasterror", "getlog", "getmore", "hello", "hostinfo", "ismaster",
        "killcursors", "listcollections", "listdatabases", "listindexes", "ping", "serverstatus",
        "whatsmyuri");

    enum Durability {
        COMMIT("a commit after every write"),
        FSYNC("a commit and an fsync after every write"),
        BACKGROUND("MVStore's background commit, about once a second");

        private final String description;

        Durability(String description) {
            this.description = description;
        }

        String label() {
            return name().toLowerCase(Locale.ROOT);
        }
    }

    private MongoLauncher() {
    }

    public static void main(String[] args) throws InterruptedException, IOException {
        if (args.length < 2 || args.length > 4) {
            usage("expected 2 to 4 arguments");
        }
        int port = parsePort(args[0]);
        String library = libraryVersion();
        MongoBackend backend;
        String description;
        switch (args[1]) {
            case "memory" -> {
                if (args.length != 2) {
                    usage("the memory backend takes no file");
                }
                backend = new Memory(identity(library, "memory", null));
                description = "memory backend";
            }
            case "h2" -> {
                if (args.length < 3) {
                    usage("the h2 backend needs a file");
                }
                Durability durability = args.length == 4 ? parseDurability(args[3]) : Durability.COMMIT;
                Path file = Path.of(args[2]).toAbsolutePath();
                if (file.getParent() != null) {
                    Files.createDirectories(file.getParent());
                }
                backend = new H2(openStore(file, durability), durability, identity(library, "h2", durability));
                description = "h2 backend, file " + file + ", " + durability.description;
            }
            default -> {
                usage("unknown backend " + args[1]);
                return;
            }
        }
        backend.version(AnnouncedVersion.MONGO_4_4);

        MongoServer server = new MongoServer(backend);
        server.bind(new InetSocketAddress(HOST, port));
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            log.info("shutting down: closing connections, then the backend");
            server.shutdownNow(); // closes the clients, waits for the event loops, closes the backend
            log.info("shut down cleanly");
            stopped.countDown();
        }, "goldenkey-mongo-shutdown"));
        log.info("mongo-java-server {} ({}) announcing MongoDB {} (wire version {}) on {}:{}", library, description,
            AnnouncedVersion.MONGO_4_4.toVersionString(), AnnouncedVersion.MONGO_4_4.getWireVersion(), HOST, port);
        stopped.await();
    }

    private static MVStore openStore(Path file, Durability durability) {
        if (durability == Durability.BACKGROUND) {
            return MVStore.open(file.toString()); // what mongo-java-server's H2Backend(String) does
        }
        // No background commit: every store runs in the thread that commits, none behind its back
        // (a background store serializes asynchronously, and a commit() racing it could return
        // before this command's changes reach the file). So no background housekeeping either:
        // H2.housekeeping() does it.
        MVStore store = new MVStore.Builder().fileName(file.toString()).autoCommitDisabled().open();
        // A commit per write makes a chunk per write; dead chunks are kept this long (default 45 s)
        // before their space is reused. Results are read within one command (mongo-java-server's
        // cursors hold documents, not map iterators), so a few seconds is plenty.
        store.setRetentionTime(RETENTION_MS);
        return store;
    }

    private static Document identity(String library, String backend, Durability durability) {
        Document identity = new Document("version", library).append("backend", backend);
        if (durability != null) {
            identity.append("durability", durability.label());
        }
        return identity;
    }

    private static String libraryVersion() {
        String version = MongoLauncher.class.getPackage().getImplementationVersion();
        return version != null ? version : "unknown";
    }

    private static int parsePort(String text) {
        try {
            int port = Integer.parseInt(text);
            if (port > 0 && port < 65536) {
                return port;
            }
        } catch (NumberFormatException ignored) {
            // falls through to usage
        }
        usage("not a port: " + text);
        return -1;
    }

    private static Durability parseDurability(String text) {
        try {
            return Durability.valueOf(text.toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            usage("unknown durability " + text);
            return null;
        }
    }

    private static void usage(String problem) {
        System.err.println("goldenkey-mongo: " + problem);
        System.err.println("usage: MongoLauncher PORT memory");
        System.err.println("       MongoLauncher PORT h2 FILE [commit|fsync|background]");
        System.exit(2);
    }

    @FunctionalInterface
    interface Commands {
        Document handle(Channel channel, String database, String command, Document query);
    }

    /** What both backends answer differently from mongo-java-server: hello, and buildInfo's identity. */
    static Document answer(Document identity, Commands library, Channel channel, String database, String command,
                           Document query) {
        if (command.equalsIgnoreCase("hello")) {
            Document legacy = library.handle(channel, database, "isMaster", query);
            Document hello = new Document("isWritablePrimary", Boolean.TRUE);
            legacy.forEach((key, value) -> {
                if (!key.equalsIgnoreCase("ismaster")) {
                    hello.put(key, value);
                }
            });
            return hello;
        }
        Document answer = library.handle(channel, database, command, query);
        if (command.equalsIgnoreCase("buildinfo")) {
            Object ok = answer.remove("ok");
            answer.put("mongoJavaServer", identity.clone());
            answer.put("ok", ok);
        }
        return answer;
    }

    static final class Memory extends MemoryBackend {

        private final Document identity;

        Memory(Document identity) {
            this.identity = identity;
        }

        @Override
        public MemoryDatabase openOrCreateDatabase(String databaseName) {
            return new NarrowedQueries.Database(databaseName, getCursorRegistry());
        }

        @Override
        public Document handleCommand(Channel channel, String database, String command, Document query) {
            return answer(identity, super::handleCommand, channel, database, command, query);
        }
    }

    static final class H2 extends H2Backend {

        private final Durability durability;
        private final Document identity;
        private final ScheduledExecutorService housekeeper;

        H2(MVStore store, Durability durability, Document identity) {
            super(store);
            this.durability = durability;
            this.identity = identity;
            if (durability == Durability.BACKGROUND) {
                housekeeper = null; // MVStore's own background thread commits and compacts
            } else {
                housekeeper = Executors.newSingleThreadScheduledExecutor(task -> {
                    Thread thread = new Thread(task, "goldenkey-h2-housekeeping");
                    thread.setDaemon(true);
                    return thread;
                });
                housekeeper.scheduleWithFixedDelay(this::housekeeping, HOUSEKEEPING_MS, HOUSEKEEPING_MS,
                    TimeUnit.MILLISECONDS);
            }
        }

        @Override
        public Document handleCommand(Channel channel, String database, String command, Document query) {
            try {
                return answer(identity, super::handleCommand, channel, database, command, query);
            } finally { // also after a failed command: part of a batch may have been written
                if (durability != Durability.BACKGROUND && !READS.contains(command.toLowerCase(Locale.ROOT))) {
                    persist();
                }
            }
        }

        /**
         * Commits (and, with fsync, forces) the store. Another thread's commit may have taken this
         * command's changes along: commit() waits for a running store to finish, so when it returns
         * they are in the file either way.
         */
        private void persist() {
            MVStore store = getMvStore();
            if (store.isClosed()) {
                return;
            }
            store.commit();
            if (durability == Durability.FSYNC) {
                store.sync();
            }
        }

        /**
         * What MVStore's background thread would do: rewrite the live pages of sparse chunks into new
         * ones (a commit per write leaves many chunks holding one live page), commit that, and move
         * chunks into free space so the file can shrink.
         */
        private void housekeeping() {
            MVStore store = getMvStore();
            try {
                if (store.isClosed()) {
                    return;
                }
                if (store.compact(TARGET_FILL_RATE, HOUSEKEEPING_WRITE_BYTES)) {
                    persist();
                }
                if (store.getFileStore() instanceof RandomAccessStore file) {
                    file.compactMoveChunks(TARGET_FILL_RATE, HOUSEKEEPING_WRITE_BYTES, store);
                }
            } catch (RuntimeException e) {
                if (!store.isClosed()) {
                    log.warn("H2 housekeeping failed", e);
                }
            }
        }

        @Override
        public void close() {
            if (housekeeper != null) {
                // shutdown(), not shutdownNow(): an interrupt during a FileChannel operation closes
                // the channel, and MVStore then closes itself in a panic (no clean shutdown)
                housekeeper.shutdown();
                try {
                    housekeeper.awaitTermination(5, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
            MVStore store = getMvStore();
            if (!store.isClosed()) {
                store.close(CLOSE_COMPACTION_MS); // commits, marks a clean shutdown, compacts
            }
            super.close(); // the store is closed already; this forgets the databases
            log.info("closed the H2 store");
        }
    }
}
