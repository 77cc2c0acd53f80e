"""The databases: XML descriptions, discovery of the public folder layouts, derived audio
(accompaniments, stem sums), the shared-song rule and the generated demo database.
``Datasets.py`` at the top level turns them into the paper's partition."""
