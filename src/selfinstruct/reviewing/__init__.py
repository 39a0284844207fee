"""Review by people: the sample they rate, the session behind the review page, the local web
app that serves it, and the export and import of their ratings."""
