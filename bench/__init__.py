"""fastemb's benchmark harness: fastemb against gensim, word2vec.c and fastText on the same corpus."""
