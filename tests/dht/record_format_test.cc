// The record store's formats (dht/record_format.h): held and cache files
// read back exactly what was written and refuse anything else; a record's
// values are refused unless they are a signed frame for that name with
// matching content.
#include "dht/record_format.h"

#include <gtest/gtest.h>

#include <fstream>

#include "support/support.h"

namespace bzzz::dht::internal {
namespace {

TEST(RecordFormatTest, BlobFilesRoundTripAndRefuseDamage) {
  testing::TempDir dir;
  const std::filesystem::path path = dir.File("r.rec");
  const std::vector<p2p::Bytes> blobs = {{1, 2, 3}, {}, p2p::Bytes(1000, 7)};
  ASSERT_TRUE(WriteBlobs(path, kHeldMagic, 42, blobs, /*durable=*/true));
  std::int64_t expires = 0;
  std::vector<p2p::Bytes> back;
  ASSERT_TRUE(ReadBlobs(path, kHeldMagic, &expires, &back));
  EXPECT_EQ(expires, 42);
  EXPECT_EQ(back, blobs);
  EXPECT_FALSE(ReadBlobs(path, kCacheMagic, &expires, &back)) << "the other kind of file";
  EXPECT_FALSE(ReadBlobs(dir.File("missing.rec"), kHeldMagic, &expires, &back));
  // Truncated, or with bytes after the last blob.
  std::string bytes = testing::ReadFile(path.string());
  dir.Write("short.rec", bytes.substr(0, bytes.size() - 1));
  EXPECT_FALSE(ReadBlobs(dir.File("short.rec"), kHeldMagic, &expires, &back));
  dir.Write("long.rec", bytes + "x");
  EXPECT_FALSE(ReadBlobs(dir.File("long.rec"), kHeldMagic, &expires, &back));
  dir.Write("junk.rec", "BZH1 not a record file at all");
  EXPECT_FALSE(ReadBlobs(dir.File("junk.rec"), kHeldMagic, &expires, &back));
}

// The same format in memory is how a cached record comes back from Redis:
// every truncation and anything appended is refused.
TEST(RecordFormatTest, EncodedBlobsDecodeExactlyAndRefuseEveryTruncation) {
  const std::vector<p2p::Bytes> blobs = {{1, 2, 3}, p2p::Bytes(300, 9)};
  const std::string data = EncodeBlobs(kCacheMagic, 0, blobs);
  std::int64_t expires = -1;
  std::vector<p2p::Bytes> back;
  ASSERT_TRUE(DecodeBlobs(data, kCacheMagic, &expires, &back));
  EXPECT_EQ(expires, 0);
  EXPECT_EQ(back, blobs);
  for (std::size_t n = 0; n < data.size(); ++n) {
    EXPECT_FALSE(DecodeBlobs(std::string_view(data).substr(0, n), kCacheMagic, &expires, &back)) << n;
  }
  EXPECT_FALSE(DecodeBlobs(data + "x", kCacheMagic, &expires, &back));
  EXPECT_FALSE(DecodeBlobs(data, kHeldMagic, &expires, &back));
}

TEST(RecordFormatTest, ValuesThatAreNotASignedRecordAreRefusedWithAReason) {
  RawRecord out;
  EXPECT_EQ(Assemble("a/name", {}, &out), "no values");
  EXPECT_NE(Assemble("a/name", {p2p::Bytes{'j', 'u', 'n', 'k'}}, &out), "");
  EXPECT_EQ(ValidateName(""), "record name must not be empty");
  EXPECT_NE(ValidateName(std::string(2000, 'a')), "");
  EXPECT_NE(ValidateName(std::string("a\x01" "b")), "");
  EXPECT_EQ(ValidateName("ucxl/h/abc"), "");
}

}  // namespace
}  // namespace bzzz::dht::internal
