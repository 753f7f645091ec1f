-- AlterTable (nullable columns: added in place, no table copy)
ALTER TABLE "Session" ADD COLUMN "address" TEXT;
ALTER TABLE "Session" ADD COLUMN "userAgent" TEXT;

