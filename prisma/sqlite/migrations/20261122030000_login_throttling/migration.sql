-- AlterTable (written by hand: SQLite can add these columns in place; Prisma's diff would
-- rebuild the whole table)
ALTER TABLE "User" ADD COLUMN "failedLogins" INTEGER NOT NULL DEFAULT 0;
ALTER TABLE "User" ADD COLUMN "lockedUntil" DATETIME;
