"""BFCL (Berkeley Function-Calling Leaderboard) support: a bfcl_eval-free AST checker."""
