"""The web app: FastAPI application (`app`), users and sessions (`auth`), SQLite store (`store`),
upload safety (`uploads`) and the glue to inference, Grad-CAM and DICOM results (`analysis`)."""
