// WriteFileAtomic: the file holds the old content or the new, never a
// mix; its mode is the one asked; failures leave it unchanged.
#include "base/file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "support/support.h"

namespace bzzz {
namespace {

namespace fs = std::filesystem;

std::string Read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

class FileTest : public ::testing::Test {
 protected:
  testing::TempDir temp_;
  const fs::path dir_{temp_.path()};
};

TEST_F(FileTest, ReplacesWholeFilesWithTheModeAsked) {
  const std::string path = (dir_ / "sub" / "state.json").string();
  ASSERT_TRUE(WriteFileAtomic(path, "first", 0600).ok());
  EXPECT_EQ(Read(path), "first");
  struct stat st{};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const std::string big(1 << 20, 'x');
  ASSERT_TRUE(WriteFileAtomic(path, big, 0600).ok());
  EXPECT_EQ(Read(path), big);
  ASSERT_TRUE(WriteFileAtomic(path, std::string("\0binary\0", 8), 0600, /*durable=*/false).ok());
  EXPECT_EQ(Read(path), std::string("\0binary\0", 8));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST_F(FileTest, AFailedWriteLeavesTheOldContent) {
  // A rename over a non-empty directory fails after the temporary file was
  // written: the temporary is removed and the error names the step.
  fs::create_directories(dir_ / "taken" / "child");
  const Status s = WriteFileAtomic((dir_ / "taken").string(), "x", 0600);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_NE(s.message().find("cannot replace"), std::string::npos) << s.message();
  EXPECT_TRUE(fs::is_directory(dir_ / "taken" / "child"));
  EXPECT_FALSE(fs::exists((dir_ / "taken").string() + ".tmp"));
  // A parent that is a file: nothing is written.
  const std::string file = (dir_ / "plain").string();
  ASSERT_TRUE(WriteFileAtomic(file, "old", 0600).ok());
  EXPECT_FALSE(WriteFileAtomic(file + "/inside", "new", 0600).ok());
  EXPECT_EQ(Read(file), "old");
}

}  // namespace
}  // namespace bzzz
