#pragma once
// Reading back the CSVs a run wrote (metrics.csv, ntk.csv, geometry.csv): a header and rows of
// plain fields, no quoting. Errors name the file and the line; a short last line (a run still
// writing) is left out with a note rather than refused.
#include <filesystem>
#include <string>
#include <vector>

#include "experiments/onsets.h"

namespace gs::experiments {

struct CsvTable {
  std::filesystem::path file;
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  std::vector<std::size_t> line_of_row;  // 1-based line numbers, for messages
  std::vector<std::string> notes;

  std::size_t column(const std::string& name) const;  // throws, naming the file, when absent
  bool has(const std::string& name) const;
  double number(std::size_t row, std::size_t col) const;  // throws, naming file:line and column
};

CsvTable read_csv(const std::filesystem::path& file);

// The finite (step, value) pairs of a column, optionally only the rows where `key_col` equals
// `key`; steps must ascend.
Series series_of(const CsvTable& t, const std::string& value_col, const std::string& key_col = "",
                 const std::string& key = "");

// The distinct values of a column, in order of first appearance.
std::vector<std::string> distinct(const CsvTable& t, const std::string& col);

}  // namespace gs::experiments
