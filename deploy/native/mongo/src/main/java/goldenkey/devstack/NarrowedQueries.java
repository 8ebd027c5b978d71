package goldenkey.devstack;

import java.util.List;
import java.util.Set;

import de.bwaldvogel.mongo.MongoDatabase;
import de.bwaldvogel.mongo.backend.CollectionOptions;
import de.bwaldvogel.mongo.backend.CursorRegistry;
import de.bwaldvogel.mongo.backend.Index;
import de.bwaldvogel.mongo.backend.IndexKey;
import de.bwaldvogel.mongo.backend.QueryResult;
import de.bwaldvogel.mongo.backend.memory.MemoryCollection;
import de.bwaldvogel.mongo.backend.memory.MemoryDatabase;
import de.bwaldvogel.mongo.bson.Document;

/**
 * The memory backend, with queries narrowed by a unique index they pin down.
 *
 * <p>mongo-java-server uses an index only for a query on exactly that index's fields: a query that
 * also names another one, as every versioned write does ({@code {_id: …, version: 7}}), scans the
 * whole collection, and the collection's lock is held meanwhile. So one busy collection made every
 * write to it as slow as a scan of it (the demo day's tickets: 5,000 documents each time), and
 * queued every other command on it behind that scan.
 *
 * <p>Here such a query takes the positions from the index on the fields it pins (the {@code _id}
 * index first), then every document found is matched against the whole query, exactly as before:
 * a document the query matches has those field values, so none is missed, and the answer is the
 * same, only found sooner. MongoDB does this itself; the services' queries do not change.
 */
final class NarrowedQueries {

    private NarrowedQueries() {
    }

    /** The part of {@code query} on {@code index}'s fields, when the query gives each of them a value. */
    static Document pinned(Index<?> index, Document query) {
        Document part = new Document();
        for (IndexKey key : index.getKeys()) {
            String field = key.getKey();
            if (!query.containsKey(field)) {
                return null;
            }
            part.put(field, query.get(field));
        }
        return part;
    }

    /** The index a wider query can be narrowed by, and the part of the query it takes; null if none. */
    static <P> Narrowing<P> narrowing(List<Index<P>> indexes, Document query) {
        Set<String> fields = query.keySet();
        for (Index<P> index : indexes) {
            if (index.canHandle(query)) {
                return null; // the library uses it as it is
            }
        }
        for (Index<P> index : indexes) {
            Document part = pinned(index, query);
            if (part != null && part.size() < fields.size() && index.canHandle(part)) {
                return new Narrowing<>(index, part);
            }
        }
        return null;
    }

    record Narrowing<P>(Index<P> index, Document part) {
    }

    static final class Database extends MemoryDatabase {

        Database(String databaseName, CursorRegistry cursorRegistry) {
            super(databaseName, cursorRegistry);
        }

        @Override
        protected MemoryCollection openOrCreateCollection(String collectionName, CollectionOptions options) {
            return new Collection(this, collectionName, options, cursorRegistry);
        }
    }

    static final class Collection extends MemoryCollection {

        Collection(MongoDatabase database, String collectionName, CollectionOptions options,
                   CursorRegistry cursorRegistry) {
            super(database, collectionName, options, cursorRegistry);
        }

        @Override
        protected QueryResult queryDocuments(Document query, Document orderBy, int numberToSkip, int limit,
                                             int batchSize, Document fieldSelector) {
            Narrowing<Integer> narrowing = narrowing(getIndexes(), query);
            if (narrowing == null) {
                return super.queryDocuments(query, orderBy, numberToSkip, limit, batchSize, fieldSelector);
            }
            Iterable<Integer> positions = narrowing.index().getPositions(narrowing.part());
            return matchDocuments(query, positions, orderBy, numberToSkip, limit, batchSize, fieldSelector);
        }
    }
}
