package goldenkey.devstack;

import java.util.List;

import de.bwaldvogel.mongo.MongoVersion;

/**
 * The MongoDB version the launcher announces: 4.4, wire version 9.
 *
 * <p>mongo-java-server's own newest choice, {@code ServerVersion.MONGO_5_0}, announces wire
 * version 8 (MongoDB 4.2), which current PyMongo refuses to talk to. Its command set is the same
 * whichever version it announces: this changes only what buildInfo, serverStatus and
 * isMaster/hello say.
 */
final class AnnouncedVersion implements MongoVersion {

    static final AnnouncedVersion MONGO_4_4 = new AnnouncedVersion(List.of(4, 4, 0), 9);

    private final List<Integer> versionArray;
    private final int wireVersion;

    private AnnouncedVersion(List<Integer> versionArray, int wireVersion) {
        this.versionArray = List.copyOf(versionArray);
        this.wireVersion = wireVersion;
    }

    @Override
    public List<Integer> getVersionArray() {
        return versionArray;
    }

    @Override
    public int getWireVersion() {
        return wireVersion;
    }
}
